"""A workerpool of real processes on a real anvil chain, for end-to-end tests.

`Cluster` starts anvil on a free port, deploys the protocol, funds the parties (LocalMarket)
and, when asked, creates a category with a short work clock time reference T, so that
deadlines (final = 10T) come within seconds. The services are then started as their own OS
processes, exactly as an operator runs them: `decloud storage run`, `decloud scheduler run`,
`decloud worker run`, each with its own TOML config file and its own log file. Every process
is stopped by its own PID when the cluster closes, whatever happened in the test.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from decloud.chain import Anvil
from decloud.chain.errors import ChainError
from decloud.chain.hub import AccountBalance, MatchedDeal
from decloud.chain.localnet import LocalMarket
from decloud.chain.registries import AppRegistry, AppType, Token
from decloud.devnet.tomlfile import dumps
from decloud.process import stop_process

REPOSITORY = Path(__file__).resolve().parents[2]
DECLOUD = Path(sys.executable).parent / "decloud"
"""The `decloud` command of this environment (the package has no `python -m decloud`)."""
MANDELBROT_BUILD = REPOSITORY / "examples" / "mandelbrot-wasm" / "build.sh"
TIMEOUT_S = 120.0
"""The longest one wait may take: generous, for a loaded 2-core machine."""
STOP_TIMEOUT_S = 15.0
SMALL = '{"iexec_args":"32 32 64"}'
"""A 32x32 Mandelbrot: a few tenths of a second."""
SLOW = '{"iexec_args":"512 512 1000"}'
"""Seconds of computing: still running when the test kills something."""
TAIL_LINES = 40
PR_SET_PDEATHSIG = 1
_SUCCESS = re.compile(r'HTTP/1\.1"? 2\d\d ')
"""A successful request in an access log: httpx's `"HTTP/1.1 200 OK"`, uvicorn's
`HTTP/1.1" 200 OK`."""
BLOCK_INTERVAL_S = 1.0
"""Anvil mines only when a transaction comes; the cluster mines an empty block this often,
as a real chain would, so that block time (which every deadline follows) keeps moving."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    """Poll `condition` until it holds; fail naming `what` once `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting until {what}")
        time.sleep(0.1)


def build(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")


def _die_with_parent() -> None:
    """In the child: SIGKILL it if the test process dies, so that a test run killed from
    outside leaves no service behind on the shared machine."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _mine_blocks(anvil: Anvil, stopping: threading.Event) -> None:
    while not stopping.wait(BLOCK_INTERVAL_S):
        try:
            anvil.evm_mine()
        except ChainError:
            continue  # a node too busy to answer in time: the next beat mines


class Process:
    """One service as an OS process: its command, its log file, start, kill and stop."""

    def __init__(self, name: str, command: list[str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            output.write(f"--- {self.name} starts: {' '.join(self.command)}\n".encode())
            output.flush()
            self.popen = subprocess.Popen(
                self.command,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPOSITORY,
                preexec_fn=_die_with_parent,
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no drain, as when the machine dies."""
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT_S)

    def terminate(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            stop_process(self.popen, STOP_TIMEOUT_S)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of the log, without the access lines of requests that succeeded
        (a worker pulls several times a second), which would hide everything else."""
        kept = [line for line in self.text().splitlines() if not _SUCCESS.search(line)]
        return "\n".join(kept[-lines:])

    def wait_logged(self, text: str, what: str) -> None:
        def logged() -> bool:
            if not self.alive:
                pytest.fail(f"{self.name} exited while waiting until {what}:\n{self.tail()}")
            return text in self.text()

        wait_for(logged, what)


@dataclass
class Scheduler:
    process: Process
    url: str
    database_url: str

    def task(self, taskid: bytes) -> dict[str, Any]:
        """The task as this scheduler shows it; state None while it has not seen it."""
        try:
            answer = httpx.get(f"{self.url}/v1/tasks/0x{taskid.hex()}", timeout=10)
        except httpx.TransportError:
            return {"state": None, "replicates": []}
        if answer.status_code != 200:
            return {"state": None, "replicates": []}
        task: dict[str, Any] = answer.json()
        return task

    def wait_for_task(
        self, taskid: bytes, states: set[str], timeout_s: float = TIMEOUT_S
    ) -> dict[str, Any]:
        wait_for(
            lambda: self.task(taskid)["state"] in states,
            f"task 0x{taskid.hex()[:12]} is {'/'.join(sorted(states))} at {self.url}",
            timeout_s,
        )
        return self.task(taskid)


@dataclass
class WorkerProcess:
    party: str
    process: Process
    config: Path


@dataclass
class Cluster:
    """The chain, its parties, and the processes started on it."""

    root: Path
    anvil: Anvil
    local: LocalMarket
    deployment: Path
    processes: list[Process] = field(default_factory=list)
    storage_url: str = ""
    storage: Process | None = None

    @classmethod
    @contextmanager
    def running(cls, root: Path, parties: list[str]) -> Iterator[Cluster]:
        """A cluster whose processes and chain are stopped on exit, even on failure."""
        with Anvil() as anvil:
            local = LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), parties)
            deployment = root / "deployment.json"
            local.deployment.save(deployment)
            cluster = cls(root, anvil, local, deployment)
            stopping = threading.Event()
            heartbeat = threading.Thread(
                target=_mine_blocks, args=(anvil, stopping), name="blocks", daemon=True
            )
            heartbeat.start()
            try:
                yield cluster
            finally:
                stopping.set()
                heartbeat.join(timeout=STOP_TIMEOUT_S)
                # All asked at once, so that their shutdowns overlap; then each is reaped.
                for process in cluster.processes:
                    process.terminate()
                for process in cluster.processes:
                    process.stop()

    # --- the chain -----------------------------------------------------------------------

    def create_category(self, time_ref: int) -> int:
        """A category of reference duration `time_ref` seconds, created by the hub owner."""
        marketplace = self.local.admin.contract("Marketplace", self.local.deployment.marketplace)
        self.local.admin.transact(
            marketplace.functions.createCategory("e2e", "short tasks for the tests", time_ref)
        )
        return int(self.local.admin.call(marketplace.functions.category_count())) - 1

    def register_wasm(self, name: str, module: Path, checksum: bytes | None = None) -> str:
        """A WASM app of the app owner, fetched by file://; its registered checksum is the
        module's unless another is given."""
        return self.register_app(
            name,
            AppType.WASM,
            module.as_uri(),
            checksum or hashlib.sha256(module.read_bytes()).digest(),
        )

    def register_app(self, name: str, kind: AppType, multiaddr: str, checksum: bytes) -> str:
        registry = AppRegistry(
            self.local["app_owner"].hub.client, self.local.deployment.app_registry
        )
        return registry.create_app(name, kind, multiaddr, checksum)

    def match(
        self,
        app: str,
        *,
        trust: int,
        params: str = SMALL,
        volume: int = 1,
        category: int = 0,
    ) -> MatchedDeal:
        """A deal of `app` at `trust` for `volume` tasks, the orders signed by their owners
        and matched by the requester."""
        app_order, pool_order, request = self.local.orders(trust=trust, volume=volume)
        app_order = dataclasses.replace(app_order, app=app)
        pool_order = dataclasses.replace(pool_order, category=category)
        request = dataclasses.replace(request, app=app, params=params, category=category)
        requester = self.local["requester"]
        return requester.hub.match_orders(
            app_order,
            requester.hub.sign(app_order, self.local["app_owner"].key),
            pool_order,
            requester.hub.sign(pool_order, self.local["pool_owner"].key),
            request,
            requester.hub.sign(request, requester.key),
        )

    def accounts(self) -> dict[str, AccountBalance]:
        """Every party's free and locked balance and score in the hub."""
        hub = self.local["requester"].hub
        return {name: hub.account(party.address) for name, party in self.local.parties.items()}

    def kitty(self) -> int:
        return self.local["requester"].hub.kitty()

    def assert_conserved(self) -> None:
        """Tokens held by the hub == every free and locked balance + the kitty."""
        token = Token(self.local.admin, self.local.deployment.token)
        held = token.balance_of(self.local.deployment.hub)
        balances = sum(a.free + a.locked for a in self.accounts().values())
        assert held == balances + self.kitty()

    def head(self) -> int:
        return int(self.local.admin.w3.eth.block_number)

    # --- the processes -------------------------------------------------------------------

    def key_file(self, party: str, directory: Path) -> Path:
        path = directory / f"{party}.key"
        path.write_text(self.local[party].key.hex())
        path.chmod(0o600)
        return path

    def _process(self, name: str, command: list[str]) -> Process:
        process = Process(name, command, self.root / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process

    def _config(self, name: str, section: str, values: dict[str, Any]) -> Path:
        path = self.root / f"{name}.toml"
        path.write_text(dumps({section: values}))
        return path

    def start_storage(self) -> str:
        """`decloud storage run`; it starts while the next processes do, and the workers
        wait until it answers."""
        directory = self.root / "storage"
        directory.mkdir()
        port = free_port()
        config = self._config(
            "storage",
            "storage",
            {
                "database_url": f"sqlite:///{directory / 'index.db'}",
                "port": port,
                "root": directory / "results",
                "rpc_url": self.local.rpc_url,
                "deployment": self.deployment,
            },
        )
        process = self._process(
            "storage", [str(DECLOUD), "storage", "run", "--config", str(config)]
        )
        self.storage_url = f"http://127.0.0.1:{port}"
        self.storage = process
        return self.storage_url

    def start_scheduler(
        self,
        name: str = "scheduler",
        *,
        database_url: str | None = None,
        wait: bool = True,
        **changes: Any,
    ) -> Scheduler:
        """A scheduler of the local pool that follows the chain from its head, returned once
        it answers (with `wait`); fast tuning: workers ping every second and are lost after
        6 s of silence."""
        directory = self.root / name
        directory.mkdir()
        port = free_port()
        database_url = database_url or f"sqlite:///{directory / 'scheduler.db'}"
        values: dict[str, Any] = {
            "database_url": database_url,
            "port": port,
            "rpc_url": self.local.rpc_url,
            "deployment": self.deployment,
            "workerpool": self.local.workerpool,
            "owner_key_file": self.key_file("pool_owner", directory),
            "start_block": self.head() + 1,
            "poll_interval_s": 0.2,
            "ping_interval_s": 1.0,
            "lost_after_s": 6.0,
            "upload_wait_s": 10.0,
            "action_retry_s": 2.0,
        }
        config = self._config(name, "scheduler", values | changes)
        process = self._process(name, [str(DECLOUD), "scheduler", "run", "--config", str(config)])
        scheduler = Scheduler(process, f"http://127.0.0.1:{port}", database_url)
        if wait:
            self.wait_answering(scheduler)
        return scheduler

    def wait_answering(self, scheduler: Scheduler) -> None:
        self._wait_answering(scheduler.process, f"{scheduler.url}/v1/info")

    def worker_config(self, party: str, scheduler: Scheduler, **changes: Any) -> Path:
        directory = self.root / party
        directory.mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "key_file": self.key_file(party, directory),
            "scheduler_url": scheduler.url,
            "storage_url": self.storage_url,
            "rpc_url": self.local.rpc_url,
            "deployment": self.deployment,
            "state_dir": directory / "state",
            "pull_interval_s": 0.25,
            "chain_poll_s": 0.25,
            "result_report_wait_s": 30.0,
            "drain_timeout_s": 5.0,
        }
        return self._config(party, "worker", values | changes)

    def start_worker(
        self, party: str, scheduler: Scheduler, *, launcher: str | None = None, **changes: Any
    ) -> WorkerProcess:
        """`decloud worker run` for `party` (or `python -m launcher CONFIG`, a variant of it),
        returned once it joined the pool."""
        (worker,) = self.start_workers([party], scheduler, launcher=launcher, **changes)
        return worker

    def start_workers(
        self,
        parties: list[str],
        scheduler: Scheduler,
        *,
        launcher: str | None = None,
        **changes: Any,
    ) -> list[WorkerProcess]:
        """Workers started together (their start-ups overlap), returned once all joined."""
        if self.storage is not None:
            self._wait_answering(self.storage, f"{self.storage_url}/info")
        workers = []
        for party in parties:
            config = self.worker_config(party, scheduler, **changes)
            command = (
                [str(DECLOUD), "worker", "run", "--config", str(config)]
                if launcher is None
                else [sys.executable, "-m", launcher, str(config)]
            )
            workers.append(WorkerProcess(party, self._process(party, command), config))
        for worker in workers:
            worker.process.wait_logged("joined workerpool", f"{worker.party} joins the pool")
        return workers

    def _wait_answering(self, process: Process, url: str) -> None:
        def answering() -> bool:
            if not process.alive:
                pytest.fail(f"{process.name} exited at start:\n{process.tail()}")
            try:
                return httpx.get(url, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answering, f"{process.name} answers at {url}")

    def tails(self) -> str:
        """The end of every process's log: what a failed test prints."""
        return "\n\n".join(f"=== {p.name} ({p.log})\n{p.tail()}" for p in self.processes)
