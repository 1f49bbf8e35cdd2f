"""A scheduler on a real anvil chain, and simulated workers that talk to it over HTTP and to
the hub through their own keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_utils.crypto import keccak
from fastapi.testclient import TestClient

from decloud.chain.hub import MatchedDeal
from decloud.chain.localnet import LocalMarket, Party
from decloud.scheduler.api import LOGIN, SERVICE_NAME, create_app
from decloud.scheduler.schemas import LoginRequest
from decloud.scheduler.service import Scheduler, build_scheduler
from decloud.scheduler.settings import SchedulerSettings
from decloud.service.auth import sign_request

WORKERS = ["worker1", "worker2", "worker3", "worker4"]
PARTIES = ["requester", "app_owner", "pool_owner", "stranger", *WORKERS]
WASM_WORKER = {"cores": 2, "memory_mb": 2048, "runtimes": ["WASM"]}


def scheduler_settings(
    local: LocalMarket, tmp_path: Path, database_url: str, **changes: Any
) -> SchedulerSettings:
    """Settings for a scheduler of the local pool that starts at the chain's head."""
    key_file = tmp_path / "pool_owner.key"
    key_file.write_text(local["pool_owner"].key.hex())
    deployment = tmp_path / "deployment.json"
    local.deployment.save(deployment)
    values: dict[str, Any] = {
        "database_url": database_url,
        "rpc_url": local.rpc_url,
        "deployment": deployment,
        "workerpool": local.workerpool,
        "owner_key_file": key_file,
        "start_block": local.admin.w3.eth.block_number + 1,
        "poll_interval_s": 0.05,
        "upload_wait_s": 5.0,
    }
    values.update(changes)
    return SchedulerSettings(**values)


@contextmanager
def serving(
    settings: SchedulerSettings, *, run_loop: bool
) -> Iterator[tuple[Scheduler, TestClient]]:
    """A scheduler and a client of its API; with `run_loop`, its loop runs meanwhile."""
    scheduler = build_scheduler(settings)
    try:
        with TestClient(create_app(scheduler, run_loop=run_loop)) as client:
            yield scheduler, client
    finally:
        scheduler.database.dispose()


def signed_login(
    local: LocalMarket, party: Party, workerpool: str, lifetime_s: int = 300
) -> dict[str, Any]:
    request = LoginRequest(workerpool=workerpool)
    auth = sign_request(
        request,
        service=SERVICE_NAME,
        action=LOGIN,
        domain=party.hub.domain,
        private_key=party.key,
        signer=party.address,
        lifetime_s=lifetime_s,
    )
    return {"request": request.model_dump(mode="json"), "auth": auth.model_dump(mode="json")}


@dataclass
class SimulatedWorker:
    """A worker agent reduced to its protocol: HTTP calls to the scheduler, hub calls with
    its own key."""

    local: LocalMarket
    name: str
    http: TestClient
    token: str = ""
    assignments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def party(self) -> Party:
        return self.local[self.name]

    @property
    def address(self) -> str:
        return self.party.address

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer: httpx.Response = self.http.request(method, url, headers=headers, **kwargs)
        return answer

    def login(self, capabilities: dict[str, Any] | None = None) -> None:
        answer = self.http.post(
            "/v1/login", json=signed_login(self.local, self.party, self.local.workerpool)
        )
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["token"]
        registered = self.call(
            "PUT", "/v1/workers/me/capabilities", json=capabilities or WASM_WORKER
        )
        assert registered.status_code == 200, registered.text

    def pull(self) -> dict[str, Any] | None:
        answer = self.call("POST", "/v1/work")
        if answer.status_code == 204:
            return None
        assert answer.status_code == 200, answer.text
        work: dict[str, Any] = answer.json()
        self.assignments[work["taskid"]] = work
        return work

    def report(self, taskid: str, step: str, **body: Any) -> httpx.Response:
        return self.call("POST", f"/v1/replicates/{taskid}/{step}", json=body or None)


DIGEST = keccak(b"the app's result")
LINK = "ipfs://bafkreiresult"


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def state_of(http: TestClient, taskid: str) -> str:
    state: str = http.get(f"/v1/tasks/{taskid}").json()["state"]
    return state


def contribute(worker: SimulatedWorker, deal: MatchedDeal, taskid: str) -> None:
    authorization = bytes.fromhex(worker.assignments[taskid]["authorization"][2:])
    assert worker.report(taskid, "started").status_code == 200
    receipt = worker.party.hub.contribute(deal, deal.deal.bot_first, DIGEST, authorization)
    assert worker.report(taskid, "contributed", tx_hash=receipt.tx_hash).status_code == 200


def upload_requested(worker: SimulatedWorker) -> bool:
    replicates = worker.call("POST", "/v1/workers/me/ping").json()["replicates"]
    return any(r["upload_requested"] for r in replicates)
