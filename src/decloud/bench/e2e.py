"""`decloud bench e2e`: how long a requester waits for a result, and how many tasks a
workerpool gets through, on a fresh devnet.

What runs is what users get: `decloud.devnet.up` in a temporary directory (its own config
file, never the user's), with its anvil (a block per transaction), market, result store,
scheduler and `workers` workers. The app is a minimal WASI module that writes one small
file. The requester, the app developer and the workerpool owner act through the devnet's
keyfiles, as the CLI does.

- `latency_s.trust1` and `latency_s.trust3`: `samples` deals of one task each, one after
  the other, timed from just before the matchOrders transaction is sent (the orders are
  signed beforehand) to the moment the requester can have the result: the task's
  `TaskFinalize` event is on-chain and the archive at its link downloads from the result
  store. One untimed trust-3 deal runs first (`warmup_s`): each worker's first run of a
  module compiles it.
- `throughput_tasks_per_min`: one deal of `bag` trust-1 tasks, from just before the match
  to the last result downloaded.
- `host` and `devnet`: the machine's CPUs and load, the number of workers and the devnet's
  timing settings, since every figure is wall-clock time.

Targets (issue): trust-3 p50 <= 3 s; throughput >= 300 tasks/min (50 tasks, 4 workers).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from eth_abi.abi import decode
from eth_account import Account
from eth_utils.crypto import keccak
from rich.console import Console
from rich.table import Table

TARGETS = {"trust3_p50_s": 3.0, "throughput_tasks_per_min": 300.0}
RESULT_POLL_S = 0.02
"""How often the requester looks for the result of a single task: well below the figures."""
BAG_POLL_S = 0.1
"""The same for a bag: 1 % of its wall time, and a tenth of the requester's CPU time."""
TASK_TIMEOUT_S = 120.0
"""A task not done by then is a failure of the run, not a slow figure."""
TASK_FINALIZE_TOPIC = "0x" + keccak(text="TaskFinalize(bytes32,bytes)").hex()

APP_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "result.txt")
  (data (i32.const 32) "done\n")
  (func (export "_start")
    ;; fd 4 is the second preopened directory, /iexec_out; create|trunc, right fd_write
    (drop (call $path_open (i32.const 4) (i32.const 0) (i32.const 16) (i32.const 10)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 0)))
    (i32.store (i32.const 8) (i32.const 32))
    (i32.store (i32.const 12) (i32.const 5))
    (drop (call $fd_write (i32.load (i32.const 0)) (i32.const 8) (i32.const 1) (i32.const 4)))))
"""
"""The trivial app: writes `done` to /iexec_out/result.txt."""


class BenchError(RuntimeError):
    """The benchmark could not measure what it was asked to."""


Progress = Callable[[str], None]


def run(
    samples: int = 12,
    bag: int = 50,
    workers: int = 4,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure on a fresh devnet, always taken down again; the report as a JSON-ready dict."""
    if samples < 1 or bag < 1:
        raise BenchError(f"samples ({samples}) and bag ({bag}) must be at least 1")
    if workers < 2:
        raise BenchError(
            f"a trust-3 task needs two workers that agree: run with --workers 2 or more "
            f"(got {workers})"
        )
    say = progress or (lambda _message: None)
    from decloud.devnet.lifecycle import UpOptions, down, up

    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="decloud-bench-e2e-") as tmp:
        config, root = Path(tmp) / "config.toml", Path(tmp) / "devnet"
        say(f"starting a devnet with {workers} workers")
        try:
            record = up(UpOptions(config=config, root=root, workers=workers))
            say(f"devnet up in {record.up_seconds} s")
            market = _Market.open(config, Path(tmp))
            try:
                report = _measure(market, samples, bag, say)
            finally:
                market.http.close()
            report["devnet"] = {
                "workers": workers,
                "up_s": record.up_seconds,
                **market.tuning(),
            }
        finally:
            say("taking the devnet down")
            down(config, root)
    report["host"] = {
        "cpus": os.cpu_count(),
        "load_1m": [load_before, round(os.getloadavg()[0], 2)],
    }
    report["targets"] = dict(TARGETS)
    return report


def _measure(market: _Market, samples: int, bag: int, say: Progress) -> dict[str, Any]:
    say("warm-up task (trust 3)")
    warmup = market.one_task(trust=3)
    latency: dict[str, Any] = {}
    for trust in (1, 3):
        say(f"{samples} tasks at trust {trust}, one after the other")
        latency[f"trust{trust}"] = _summary([market.one_task(trust=trust) for _ in range(samples)])
    say(f"a bag of {bag} trust-1 tasks")
    wall = market.bag(bag)
    return {
        "latency_s": latency,
        "warmup_s": round(warmup, 3),
        "bag": {"tasks": bag, "wall_s": round(wall, 3)},
        "throughput_tasks_per_min": round(bag / wall * 60, 1),
    }


def _summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "samples": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(_percentile(ordered, 0.95), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class _Market:
    """The devnet as its requester, app developer and workerpool owner see it."""

    config: dict[str, Any]
    requester: Any
    """The requester's Hub facade (decloud.chain.hub.Hub)."""
    app: str
    keys: dict[str, bytes]
    http: httpx.Client

    @classmethod
    def open(cls, config_path: Path, scratch: Path) -> _Market:
        """Read the devnet's config and keyfiles, and register the app."""
        import hashlib

        import wasmtime

        from decloud.chain.client import ChainClient
        from decloud.chain.deploy import Deployment
        from decloud.chain.hub import Hub
        from decloud.chain.registries import AppRegistry, AppType
        from decloud.devnet.cast import DEVNET_PASSWORD, KEYSTORE_PASSWORD_VARIABLE

        config = tomllib.loads(config_path.read_text())
        deployment = Deployment(chain_id=config["chain"]["chain_id"], **config["contracts"])
        rpc_url, keystore = config["chain"]["rpc_url"], Path(config["wallet"]["keystore"])
        password = (
            config["wallet"].get("password")
            or os.environ.get(KEYSTORE_PASSWORD_VARIABLE)
            or DEVNET_PASSWORD
        )
        keys = {
            role: bytes(
                Account.decrypt(json.loads((keystore / f"{role}.json").read_text()), password)
            )
            for role in ("app_developer", "workerpool_owner", "requester")
        }
        module = scratch / "app.wasm"
        module.write_bytes(wasmtime.wat2wasm(APP_WAT))
        registry = AppRegistry(ChainClient(rpc_url, keys["app_developer"]), deployment.app_registry)
        app = registry.create_app(
            "bench-e2e", AppType.WASM, module.as_uri(), hashlib.sha256(module.read_bytes()).digest()
        )
        requester = Hub(ChainClient(rpc_url, keys["requester"]), deployment)
        return cls(config, requester, app, keys, httpx.Client(timeout=10))

    def tuning(self) -> dict[str, Any]:
        """The scheduler's and the workers' numeric settings (intervals, waits, slots)."""
        return {
            service: {
                name: value
                for name, value in self.config[service].items()
                if isinstance(value, int | float) and not isinstance(value, bool) and name != "port"
            }
            for service in ("scheduler", "worker")
        }

    def one_task(self, trust: int) -> float:
        """Seconds from the match of a one-task deal to its result downloaded."""
        match = self._signed_orders(trust=trust, volume=1)
        started = time.perf_counter()
        deal = self.requester.match_orders(*match)
        self._wait_for_results(
            {deal.task_id(deal.deal.bot_first)}, deal.receipt.block_number, RESULT_POLL_S
        )
        return time.perf_counter() - started

    def bag(self, size: int) -> float:
        """Seconds from the match of a deal of `size` trust-1 tasks to its last result."""
        match = self._signed_orders(trust=1, volume=size)
        started = time.perf_counter()
        deal = self.requester.match_orders(*match)
        first = deal.deal.bot_first
        tasks = {deal.task_id(index) for index in range(first, first + size)}
        self._wait_for_results(tasks, deal.receipt.block_number, BAG_POLL_S)
        return time.perf_counter() - started

    def _wait_for_results(self, tasks: set[bytes], from_block: int, poll_s: float) -> None:
        """Until every task of `tasks` is finalized and its archive downloads.

        The requester polls the node's logs itself, with one small JSON-RPC request from the
        last block it read: on a two-core machine, a heavier poll would take CPU time from
        the system it measures.
        """
        waiting = set(tasks)
        deadline = time.monotonic() + TASK_TIMEOUT_S
        while waiting:
            logs = self._rpc(
                "eth_getLogs",
                {
                    "address": self.requester.hub.address,
                    "topics": [TASK_FINALIZE_TOPIC],
                    "fromBlock": hex(from_block),
                },
            )
            for log in logs:
                taskid = bytes.fromhex(log["topics"][1][2:])
                # Not past it: anvil refuses a range that starts after its head.
                from_block = max(from_block, int(log["blockNumber"], 16))
                if taskid in waiting:
                    (results,) = decode(["bytes"], bytes.fromhex(log["data"][2:]))
                    self._download(taskid, results.decode())
                    waiting.discard(taskid)
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"0x{taskid.hex()[:12]}" for taskid in sorted(waiting))
                raise BenchError(
                    f"{len(waiting)} task(s) not finalized within {TASK_TIMEOUT_S:g} s: {names}"
                )
            time.sleep(poll_s)

    def _rpc(self, method: str, *params: Any) -> Any:
        answer = self.http.post(
            self.config["chain"]["rpc_url"],
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
        ).json()
        if "error" in answer:
            raise BenchError(f"the node refused {method}: {answer['error']}")
        return answer["result"]

    def _download(self, taskid: bytes, link: str) -> None:
        if not link.startswith("/ipfs/"):
            raise BenchError(f"task 0x{taskid.hex()} was finalized without a result link")
        cid = link.removeprefix("/ipfs/")
        answer = self.http.get(f"{self.config['services']['storage']}/results/{cid}")
        if answer.status_code != 200 or not answer.content:
            raise BenchError(
                f"the result of task 0x{taskid.hex()} ({link}) does not download: "
                f"HTTP {answer.status_code}"
            )

    def _signed_orders(self, trust: int, volume: int) -> tuple[Any, ...]:
        """App order, its signature, workerpool order, signature, request, signature."""
        from decloud.chain.hub import ZERO_ADDRESS
        from decloud.protocol.orders import AppOrder, RequestOrder, WorkerpoolOrder
        from decloud.protocol.tags import NO_TAG

        nobody, salt = ZERO_ADDRESS, secrets.token_bytes(32)
        workerpool, hub = self.config["devnet"]["workerpool"], self.requester
        app_order = AppOrder(
            app=self.app,
            appprice=0,
            volume=volume,
            tag=NO_TAG,
            datasetrestrict=nobody,
            workerpoolrestrict=nobody,
            requesterrestrict=nobody,
            salt=salt,
        )
        pool_order = WorkerpoolOrder(
            workerpool=workerpool,
            workerpoolprice=10**9,
            volume=volume,
            tag=NO_TAG,
            category=0,
            trust=trust,
            apprestrict=nobody,
            datasetrestrict=nobody,
            requesterrestrict=nobody,
            salt=salt,
        )
        request = RequestOrder(
            app=self.app,
            appmaxprice=0,
            dataset=nobody,
            datasetmaxprice=0,
            workerpool=workerpool,
            workerpoolmaxprice=10**9,
            requester=hub.address,
            volume=volume,
            tag=NO_TAG,
            category=0,
            trust=trust,
            beneficiary=hub.address,
            callback=nobody,
            params="",
            salt=salt,
        )
        return (
            app_order,
            hub.sign(app_order, self.keys["app_developer"]),
            pool_order,
            hub.sign(pool_order, self.keys["workerpool_owner"]),
            request,
            hub.sign(request, self.keys["requester"]),
        )


def bench_e2e(
    samples: Annotated[
        int, typer.Option(min=1, help="Tasks timed one after the other, at each trust")
    ] = 12,
    bag: Annotated[
        int, typer.Option(min=1, help="Tasks of the deal that measures throughput")
    ] = 50,
    workers: Annotated[int, typer.Option(min=2, help="Workers of the devnet")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Latency from matchOrders to a downloadable result (trust 1 and trust 3) and the
    throughput of a bag of tasks, on a fresh devnet in a temporary directory."""
    console = Console(stderr=True, log_path=False)
    try:
        report = run(samples=samples, bag=bag, workers=workers, progress=console.log)
    except BenchError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table("measure", "value", "target")
    for trust in ("trust1", "trust3"):
        figures = report["latency_s"][trust]
        target = f"p50 <= {TARGETS['trust3_p50_s']:g} s" if trust == "trust3" else ""
        table.add_row(
            f"latency {trust} (s)",
            f"p50 {figures['p50']}  p95 {figures['p95']}  ({figures['samples']} tasks)",
            target,
        )
    table.add_row(
        f"throughput ({report['bag']['tasks']} tasks, {workers} workers)",
        f"{report['throughput_tasks_per_min']} tasks/min",
        f">= {TARGETS['throughput_tasks_per_min']:g} tasks/min",
    )
    Console().print(table)
