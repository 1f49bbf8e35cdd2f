"""A workerpool on a real anvil chain for worker tests: the scheduler and the result store
served over HTTP on loopback, deals of the registered sample app, and worker agents run
in threads of the test process (or as a process, see test_drain.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from decloud.chain.hub import ZERO_ADDRESS as ZERO
from decloud.chain.hub import MatchedDeal, empty_dataset_order
from decloud.chain.localnet import LocalMarket
from decloud.scheduler.service import Scheduler
from decloud.scheduler.settings import SchedulerSettings
from decloud.storage.settings import StorageSettings
from decloud.worker import Worker, WorkerSettings, build_worker
from decloud.worker.journal import Journal
from decloud.worker.state import ReplicateRecord

WORKERS = ["worker1", "worker2", "worker3"]
PARTIES = ["requester", "app_owner", "pool_owner", *WORKERS]
SMALL = '{"iexec_args":"32 32 64"}'
"""Params of a 32x32 Mandelbrot: a run of a few tenths of a second."""
SLOW = '{"iexec_args":"512 512 1000"}'
"""About two seconds of computing: long enough to still be running when something happens."""
SLOWER = '{"iexec_args":"600 600 1500"}'
"""About twice SLOW."""
TIMEOUT_S = 30.0
"""The longest any single wait of these tests may take."""


@dataclass(frozen=True)
class Apps:
    by_file: str
    by_http: str
    tampered: str


def build(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")


@contextmanager
def serving(app: FastAPI, name: str) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and a free port, in a thread; its URL. On exit the server
    is asked to stop (its lifespan ends, with the scheduler's loop) and the thread joined."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"{name}-server", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), f"the {name} starts", 10)
    assert thread.is_alive(), f"the {name} did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def store_settings(directory: Path, local: LocalMarket) -> StorageSettings:
    local.deployment.save(directory / "deployment.json")
    return StorageSettings(
        database_url=f"sqlite:///{directory / 'index.db'}",
        port=0,
        root=directory / "results",
        rpc_url=local.rpc_url,
        deployment=directory / "deployment.json",
    )


def scheduler_settings(local: LocalMarket, directory: Path, **changes: Any) -> SchedulerSettings:
    directory.mkdir(parents=True)
    key_file = directory / "pool_owner.key"
    key_file.write_text(local["pool_owner"].key.hex())
    local.deployment.save(directory / "deployment.json")
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{directory / 'scheduler.db'}",
        "rpc_url": local.rpc_url,
        "deployment": directory / "deployment.json",
        "workerpool": local.workerpool,
        "owner_key_file": key_file,
        "start_block": local.admin.w3.eth.block_number + 1,
        "poll_interval_s": 0.05,
        "ping_interval_s": 1.0,
        "upload_wait_s": 10.0,
    }
    return SchedulerSettings(**(values | changes))


@dataclass
class Pool:
    """The chain, the scheduler (URL and object) and the result store of one test."""

    local: LocalMarket
    url: str
    store_url: str
    scheduler: Scheduler

    def match(
        self, app: str, *, trust: int, params: str = SMALL, dataset: str | None = None
    ) -> bytes:
        """A deal of `app` (and `dataset`, both of the app owner, for free) at `trust`,
        matched by the requester; its task's id."""
        app_order, pool_order, request = self.local.orders(trust=trust)
        app_order = dataclasses.replace(app_order, app=app)
        request = dataclasses.replace(request, app=app, params=params, dataset=dataset or ZERO)
        owner, requester = self.local["app_owner"], self.local["requester"]
        dataset_order = None
        if dataset is not None:
            dataset_order = dataclasses.replace(
                empty_dataset_order(), dataset=dataset, volume=10**6, salt=self.local.next_salt()
            )
        deal: MatchedDeal = requester.hub.match_orders(
            app_order,
            requester.hub.sign(app_order, owner.key),
            pool_order,
            requester.hub.sign(pool_order, self.local["pool_owner"].key),
            request,
            requester.hub.sign(request, requester.key),
            dataset_order,
            b"" if dataset_order is None else requester.hub.sign(dataset_order, owner.key),
        )
        return deal.task_id(deal.deal.bot_first)

    def task(self, taskid: bytes) -> dict[str, Any]:
        """The task as the scheduler shows it (404: not seen yet)."""
        answer = httpx.get(f"{self.url}/v1/tasks/0x{taskid.hex()}", timeout=10)
        return answer.json() if answer.status_code == 200 else {"state": None, "replicates": []}

    def wait_for_task(self, taskid: bytes, state: str) -> dict[str, Any]:
        wait_for(lambda: self.task(taskid)["state"] == state, f"the task is {state}")
        return self.task(taskid)

    def key_file(self, party: str, directory: Path) -> Path:
        path = directory / f"{party}.key"
        path.write_text(self.local[party].key.hex())
        return path

    def worker_settings(self, party: str, directory: Path, **changes: Any) -> WorkerSettings:
        """Settings of a worker agent of `party` that polls fast, with its own state."""
        directory.mkdir(parents=True, exist_ok=True)
        self.local.deployment.save(directory / "deployment.json")
        values: dict[str, Any] = {
            "key_file": self.key_file(party, directory),
            "scheduler_url": self.url,
            "storage_url": self.store_url,
            "rpc_url": self.local.rpc_url,
            "deployment": directory / "deployment.json",
            "state_dir": directory / "state",
            "pull_interval_s": 0.1,
            "chain_poll_s": 0.1,
            "result_report_wait_s": 15.0,
            "drain_timeout_s": TIMEOUT_S,
        }
        return WorkerSettings(**(values | changes))


@dataclass
class RunningWorker:
    """A worker agent whose loop runs in a thread."""

    name: str
    worker: Worker
    thread: threading.Thread
    journal: Journal

    def record(self, taskid: bytes) -> ReplicateRecord | None:
        """The replicate's record, in progress or finished."""
        for record in self.journal.active():
            if record.taskid == taskid:
                return record
        return self.journal.finished(taskid)

    def wait_until(self, taskid: bytes, state: str) -> ReplicateRecord:
        """The record once its replicate reached `state` (it may have moved on since)."""

        def reached() -> bool:
            record = self.record(taskid)
            return record is not None and any(
                entry.change.split(":")[0].endswith(f"-> {state}") for entry in record.story
            )

        wait_for(reached, f"{self.name}'s replicate is {state}")
        record = self.record(taskid)
        assert record is not None
        return record

    def wait_finished(self, taskid: bytes) -> ReplicateRecord:
        wait_for(
            lambda: self.journal.finished(taskid) is not None, f"{self.name} ends its replicate"
        )
        record = self.journal.finished(taskid)
        assert record is not None
        return record

    def stop(self) -> None:
        """Stop at once (as if killed between two steps); bounded."""
        self.worker.stop()
        self.thread.join(timeout=TIMEOUT_S)
        assert not self.thread.is_alive(), f"{self.name} did not stop"


@dataclass
class WorkerFactory:
    pool: Pool
    root: Path
    running: list[RunningWorker] = field(default_factory=list)

    def start(self, party: str, **changes: Any) -> RunningWorker:
        """A worker agent of `party`, running; a second start of the same party resumes
        from the same state directory."""
        settings = self.pool.worker_settings(party, self.root / party, **changes)
        worker = build_worker(settings)
        thread = threading.Thread(target=worker.run, name=f"{party}-loop", daemon=True)
        thread.start()
        running = RunningWorker(party, worker, thread, Journal(settings.state_dir))
        self.running.append(running)
        return running

    def stop_all(self) -> None:
        for running in self.running:
            if running.thread.is_alive():
                running.stop()
            running.worker.close()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting until {what}"
        time.sleep(0.05)
