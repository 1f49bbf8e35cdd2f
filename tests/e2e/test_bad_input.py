"""Bad input, end to end, with real processes: apps that cannot be fetched, are not the
registered ones, fail, exceed their limits or write an output without a canonical digest.
Every replicate ends with a typed cause and a message naming the problem, nothing hangs, and
each task, which can never reach consensus, is refunded by claim after its final deadline.

The deals are in a category with a 3-second T (final deadline 30 s after the deal) and are
all matched at once, so the whole module waits for one final deadline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shlex
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from decloud.chain.registries import AppType
from decloud.protocol.hub import TASK_FAILED
from decloud.sdk.config import ChainSettings, ClientConfig, ServiceUrls, WalletSettings
from tests.e2e.cluster import DECLOUD, REPOSITORY, Cluster, Scheduler, build
from tests.runtime.wat_apps import GROWS_UNTIL_REFUSED, INFINITE_LOOP, SLEEPS_FOR_A_DAY

pytestmark = pytest.mark.anvil

T_S = 3
FUEL = 2 * 10**7
"""The workers' fuel per run: a probe run needs far less, an endless loop burns it in a
fraction of a second, well before the 3-second wall time even on a loaded machine."""
APP_MEMORY_MB = 64
PROBE_SOURCE = REPOSITORY / "tests" / "runtime" / "apps" / "probe.c"
PARTIES = ["requester", "app_owner", "pool_owner", "worker1", "worker2"]


@dataclass(frozen=True)
class Case:
    """A bad input: the app to register, its params, and what every replicate must say."""

    module: str
    """A file of the built apps, or `missing` (a URL that answers 404)."""
    args: tuple[str, ...]
    cause: str
    message: str
    registered_checksum: bytes | None = None


CASES = {
    "module-url-404": Case("missing", (), "download-failed", "404"),
    "checksum-mismatch": Case(
        "probe.wasm",
        ("exit", "0"),
        "checksum-mismatch",
        "registered checksum is 0x" + hashlib.sha256(b"not the probe").hexdigest()[:8],
        registered_checksum=hashlib.sha256(b"not the probe").digest(),
    ),
    "exits-non-zero": Case("probe.wasm", ("exit", "3"), "app-exited", "exited with code 3"),
    "out-of-fuel": Case("loop.wasm", (), "out-of-fuel", f"{FUEL} fuel"),
    "out-of-memory": Case(
        "grow.wasm", (), "out-of-memory", f"of its {APP_MEMORY_MB * 1024 * 1024}-byte limit"
    ),
    "exceeds-time": Case("sleep.wasm", (), "timeout", f"still running after {T_S}"),
    "malformed-computed-json": Case(
        "probe.wasm", ("computed", "{not-json"), "output-invalid", "computed.json: not valid JSON"
    ),
    "symlink-in-output": Case(
        "probe.wasm", ("symlink",), "output-invalid", "/iexec_out/link.txt: links are refused"
    ),
    "output-path-escapes": Case(
        "probe.wasm",
        ("computed", '{"deterministic-output-path": "../../etc/passwd"}'),
        "output-invalid",
        "must not contain '..'",
    ),
}


@dataclass
class BadDeals:
    cluster: Cluster
    scheduler: Scheduler
    taskids: dict[str, bytes]
    before: dict[str, Any]
    pool_stakes: int


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster.running(tmp_path_factory.mktemp("bad-input"), PARTIES) as running:
        yield running


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bad apps: the probe built from C, three WAT modules compiled to WASM."""
    directory = tmp_path_factory.mktemp("bad-apps")
    build(
        ["clang", "--target=wasm32-wasi", "-O2", "-Wl,--strip-all", "-o",
         str(directory / "probe.wasm"), str(PROBE_SOURCE)]
    )  # fmt: skip
    for name, text in (
        ("loop.wasm", INFINITE_LOOP),
        ("grow.wasm", GROWS_UNTIL_REFUSED),
        ("sleep.wasm", SLEEPS_FOR_A_DAY),
    ):
        (directory / name).write_bytes(wasmtime.wat2wasm(text))
    return directory


@pytest.fixture(scope="module")
def empty_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTP server with nothing to serve: every module URL on it answers 404."""
    directory = tmp_path_factory.mktemp("empty-site")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="empty-site", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Silent: access logs do not belong in the test output."""


@pytest.fixture(scope="module")
def bad_deals(cluster: Cluster, modules: Path, empty_site: str) -> BadDeals:
    """One deal per case, all matched at once, on a pool of two workers."""
    category = cluster.create_category(T_S)
    cluster.start_storage()
    scheduler = cluster.start_scheduler(
        assign_cutoff_s=1, final_margin_s=1, max_failed_replicates=2
    )
    cluster.start_workers(["worker1", "worker2"], scheduler, fuel=FUEL, app_memory_mb=APP_MEMORY_MB)
    before = cluster.accounts()
    taskids: dict[str, bytes] = {}
    pool_stakes = 0
    for name, case in CASES.items():
        if case.module == "missing":
            app = cluster.register_app(
                name, AppType.WASM, f"{empty_site}/{name}.wasm", hashlib.sha256(b"").digest()
            )
        else:
            app = cluster.register_wasm(name, modules / case.module, case.registered_checksum)
        params = json.dumps({"iexec_args": shlex.join(case.args)})
        deal = cluster.match(app, trust=1, params=params, category=category)
        taskids[name] = deal.task_id(deal.deal.bot_first)
        pool_stakes += deal.deal.pool_stake
    return BadDeals(cluster, scheduler, taskids, before, pool_stakes)


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_ends_every_replicate_with_its_cause_and_the_task_is_claimed(
    cluster: Cluster, bad_deals: BadDeals, name: str
) -> None:
    case = CASES[name]
    taskid = bad_deals.taskids[name]

    status = bad_deals.scheduler.wait_for_task(taskid, {"failed"}, timeout_s=10 * T_S + 90)

    replicates = status["replicates"]
    assert len(replicates) == 2, "each of the two workers tried once, then the task gave up"
    for replicate in replicates:
        assert (replicate["state"], replicate["cause"]) == ("failed", case.cause), replicate
        assert case.message in replicate["message"], replicate["message"]
        assert replicate["advice"], "every cause says what to do"
    task = cluster.local["requester"].hub.task(taskid)
    assert (task.status, task.contributors) == (TASK_FAILED, 0)


def test_the_requester_gets_every_bad_task_refunded_and_the_pool_stakes_go_to_the_kitty(
    cluster: Cluster, bad_deals: BadDeals, tmp_path: Path
) -> None:
    for taskid in bad_deals.taskids.values():
        bad_deals.scheduler.wait_for_task(taskid, {"failed"}, timeout_s=10 * T_S + 90)

    after, before = cluster.accounts(), bad_deals.before
    assert after["requester"] == before["requester"], "every locked price is back in free"
    assert after["pool_owner"].free == before["pool_owner"].free - bad_deals.pool_stakes
    assert after["pool_owner"].locked == before["pool_owner"].locked
    assert cluster.kitty() == bad_deals.pool_stakes
    for worker in ("worker1", "worker2"):
        assert after[worker] == before[worker], "no worker staked anything"
    cluster.assert_conserved()

    shown = task_show(cluster, bad_deals, bad_deals.taskids["checksum-mismatch"], tmp_path)
    assert "checksum-mismatch" in json.dumps(shown), shown


def task_show(cluster: Cluster, deals: BadDeals, taskid: bytes, directory: Path) -> Any:
    """`decloud task show --json`, as a requester runs it."""
    config = ClientConfig(
        chain=ChainSettings(rpc_url=cluster.local.rpc_url, chain_id=cluster.anvil.chain_id),
        contracts=cluster.local.deployment,
        services=ServiceUrls(scheduler=deals.scheduler.url, storage=cluster.storage_url),
        wallet=WalletSettings(keystore=directory / "keystore"),
    )
    path = config.save(directory / "client.toml")
    shown = subprocess.run(
        [str(DECLOUD), "task", "show", f"0x{taskid.hex()}", "--json", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)
