"""A whole run through the CLI against a real chain, market, scheduler, result store and
worker agent: the task completes, its result is downloaded and is the one the chain agreed
on; the requester (only) reads the app's logs; a result that is not the chain's, or a task
that has none yet, is refused and nothing is kept."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from decloud.chain.hub import MatchedDeal
from decloud.chain.localnet import NANO, LocalMarket
from decloud.chain.registries import WorkerpoolRegistry
from decloud.sdk.wallet import Keystore
from decloud.storage.chain import ResultChain
from decloud.storage.cid import RESULT_LINK_PREFIX
from tests.sdk.app_run.conftest import (
    LOG_CAP,
    Network,
    app_order,
    market_service,
    pool_order,
    publish,
)
from tests.sdk.conftest import Cli
from tests.worker.pool import SMALL, Apps, Pool, WorkerFactory

TASK_ID = re.compile(r"^  task (0x[0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class CompletedRun:
    """What `decloud app run` printed for a task it followed to its result."""

    network: Network
    cli: Cli
    taskid: str
    output: str
    result_dir: Path
    market_url: str


@pytest.fixture(scope="module")
def completed(
    local: LocalMarket,
    apps: Apps,
    keystore: Keystore,
    module_pool: Pool,
    module_workers: WorkerFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CompletedRun]:
    """`decloud app run mandelbrot --yes` with one worker, as a person runs it."""
    directory = tmp_path_factory.mktemp("app-run")
    network = Network(local, keystore, apps, directory)
    module_workers.start("worker1")
    with market_service(local, directory) as market_url:
        publish(
            local, market_url,
            app_order(local, apps.by_file, 1 * NANO), pool_order(local, 3 * NANO, trust=1),
        )  # fmt: skip
        cli = network.cli(
            "run", market=market_url, scheduler=module_pool.url, storage=module_pool.store_url
        )
        result_dir = directory / "result"
        args = json.loads(SMALL)["iexec_args"]
        ran = cli(
            "app", "run", "mandelbrot", "--args", args, "--yes", "--download", str(result_dir),
            "--timeout", "60",
        )  # fmt: skip
        assert ran.exit_code == 0, ran.stdout + ran.stderr
        (taskid,) = TASK_ID.findall(ran.stdout)
        yield CompletedRun(network, cli, taskid, ran.stdout, result_dir, market_url)


def test_app_run_follows_the_task_and_downloads_the_result_the_chain_agreed_on(
    completed: CompletedRun, local: LocalMarket
) -> None:
    taskid = bytes.fromhex(completed.taskid[2:])
    revealed = ResultChain(local.rpc_url, local.deployment).revealed_digest(
        taskid, local["worker1"].address
    )

    assert revealed is not None
    assert "orders chosen" in completed.output and f"price: {4 * NANO} per task" in completed.output
    assert f"result of task {completed.taskid} in {completed.result_dir}" in completed.output
    assert f"digest 0x{revealed.hex()} (the one revealed on-chain)" in completed.output
    ppm = (completed.result_dir / "mandelbrot.ppm").read_bytes()
    assert ppm.startswith(b"P6\n32 32\n")


def test_a_paid_run_whose_download_fails_still_gives_its_deal_and_tasks_as_json(
    completed: CompletedRun, module_pool: Pool
) -> None:
    """The run is paid for once matched: whatever fails after, a script learns its deal."""
    unreachable_store = "http://127.0.0.1:9"
    cli = completed.network.cli(
        "dead-store",
        market=completed.market_url,
        scheduler=module_pool.url,
        storage=unreachable_store,
    )
    args = json.loads(SMALL)["iexec_args"]

    ran = cli("app", "run", "mandelbrot", "--args", args, "--yes", "--json", "--timeout", "60")

    assert ran.exit_code == 1, ran.stdout + ran.stderr
    document = json.loads(ran.stdout)
    (taskid,) = document["deal"]["taskids"]
    assert taskid != completed.taskid
    assert "cannot be downloaded" in document["error"]["message"]
    assert unreachable_store in document["error"]["advice"]


def test_result_download_verifies_the_result_again_into_a_new_directory(
    completed: CompletedRun, tmp_path: Path
) -> None:
    downloaded = completed.cli(
        "result", "download", completed.taskid, "--output", str(tmp_path / "again"), "--json"
    )

    assert downloaded.exit_code == 0, downloaded.stderr
    document = json.loads(downloaded.stdout)
    assert document["taskid"] == completed.taskid
    assert f"digest 0x{document['result_digest'][2:]}" in completed.output
    assert (tmp_path / "again" / "mandelbrot.ppm").read_bytes() == (
        completed.result_dir / "mandelbrot.ppm"
    ).read_bytes()


def test_task_logs_show_the_head_of_the_apps_stdout_to_the_requester(
    completed: CompletedRun,
) -> None:
    shown = completed.cli("task", "logs", completed.taskid)
    as_json = completed.cli("task", "logs", completed.taskid, "--json")

    assert shown.exit_code == 0, shown.stderr
    (replicate,) = json.loads(as_json.stdout)["replicates"]
    assert replicate["stdout"] == "rendered 32x32 pixels"[:LOG_CAP]
    assert replicate["stdout_truncated"] is True
    assert replicate["stdout_total_bytes"] > LOG_CAP
    assert f"replicate of worker {replicate['worker']}" in shown.stdout
    assert (
        f"stdout: truncated, the first {LOG_CAP} of {replicate['stdout_total_bytes']} bytes"
        in shown.stdout
    )
    assert "rendered 32x32 p\n" in shown.stdout


def test_task_logs_are_refused_to_another_wallet(completed: CompletedRun) -> None:
    refused = completed.cli("task", "logs", completed.taskid, wallet="worker3")

    assert refused.exit_code == 1
    assert "only the requester of task" in refused.stderr
    assert "rendered" not in refused.stdout


@pytest.fixture(scope="module")
def unwatched_deal(local: LocalMarket, apps: Apps) -> Iterator[MatchedDeal]:
    """A trust-1 deal of the sample app on a second workerpool of the pool owner, which no
    scheduler follows: the test plays its worker and scheduler by hand."""
    owner = local["pool_owner"]
    registry = WorkerpoolRegistry(owner.hub.client, local.deployment.workerpool_registry)
    pool = registry.create_workerpool("unwatched pool")
    app, _pool, request = local.orders(trust=1)
    app = dataclasses.replace(app, app=apps.by_file)
    workerpool = pool_order(local, 3 * 10**9, trust=1, workerpool=pool)
    request = dataclasses.replace(request, app=apps.by_file, volume=2)
    requester = local["requester"]
    yield requester.hub.match_orders(
        app, requester.hub.sign(app, local["app_owner"].key),
        workerpool, requester.hub.sign(workerpool, owner.key),
        request, requester.hub.sign(request, requester.key),
    )  # fmt: skip


def test_result_download_refuses_an_archive_other_than_the_consensus_and_keeps_nothing(
    completed: CompletedRun, local: LocalMarket, unwatched_deal: MatchedDeal, tmp_path: Path
) -> None:
    """The task is finalized with the link of another task's archive, a real one in the
    store, while its winner revealed another digest."""
    good = json.loads(
        completed.cli("result", "download", completed.taskid, "--output",
                      str(tmp_path / "good"), "--json").stdout
    )  # fmt: skip
    index = unwatched_deal.deal.bot_first
    taskid = unwatched_deal.task_id(index)
    revealed = b"\x42" * 32
    worker = local["worker2"]
    worker.hub.contribute_and_finalize(
        unwatched_deal, index, revealed,
        local["pool_owner"].hub.authorize(worker.address, taskid, local["pool_owner"].key),
        (RESULT_LINK_PREFIX + good["cid"]).encode(),
    )  # fmt: skip

    refused = completed.cli(
        "result", "download", "0x" + taskid.hex(), "--output", str(tmp_path / "tampered")
    )

    assert refused.exit_code == 1
    assert f"consensus digest 0x{revealed.hex()}" in refused.stderr
    assert good["result_digest"] in refused.stderr
    assert "nothing was kept" in refused.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["good"]


def test_result_download_refuses_a_task_that_is_not_completed(
    completed: CompletedRun, unwatched_deal: MatchedDeal, tmp_path: Path
) -> None:
    taskid = unwatched_deal.task_id(unwatched_deal.deal.bot_first + 1)

    refused = completed.cli(
        "result", "download", "0x" + taskid.hex(), "--output", str(tmp_path / "none")
    )

    assert refused.exit_code == 1
    assert f"task 0x{taskid.hex()} is unset on-chain, not completed" in refused.stderr
    assert "--watch" in refused.stderr
    assert not (tmp_path / "none").exists()
