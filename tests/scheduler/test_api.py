"""The scheduler's HTTP API against a real chain, its loop stepped by hand."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from decloud.chain.localnet import LocalMarket
from decloud.protocol.ids import authorization_digest
from decloud.protocol.orders import WorkerpoolAuthorization, recover_signer
from decloud.scheduler import engine
from decloud.scheduler.api import SERVICE_NAME, TASK_LOGS
from decloud.scheduler.engine import write_transaction
from decloud.scheduler.schemas import DealTerms, LogsRequest
from decloud.scheduler.service import Scheduler
from decloud.service.auth import sign_request
from tests.scheduler.pool import SimulatedWorker, scheduler_settings, serving, signed_login

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def pool(local: LocalMarket, tmp_path: Path) -> Iterator[tuple[Scheduler, TestClient]]:
    settings = scheduler_settings(
        local,
        tmp_path,
        f"sqlite:///{tmp_path / 'scheduler.db'}",
        allowed_workers=(local["worker1"].address, local["worker2"].address),
        max_log_bytes=16,
    )
    with serving(settings, run_loop=False) as served:
        yield served


def login_token(local: LocalMarket, http: TestClient, name: str) -> str:
    answer = http.post("/v1/login", json=signed_login(local, local[name], local.workerpool))
    token: str = answer.json()["token"]
    return token


def test_a_worker_logs_in_once_per_signature(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    _, http = pool
    body = signed_login(local, local["worker1"], local.workerpool)
    first = http.post("/v1/login", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["worker"] == local["worker1"].address
    replayed = http.post("/v1/login", json=body)
    assert (replayed.status_code, replayed.json()["rule"]) == (401, "auth.replay")


def test_an_expired_login_is_refused(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    _, http = pool
    expired = http.post(
        "/v1/login", json=signed_login(local, local["worker1"], local.workerpool, -1)
    )
    assert (expired.status_code, expired.json()["rule"]) == (401, "auth.expired")


def test_unknown_workers_and_sessions_are_refused(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    _, http = pool
    stranger = http.post("/v1/login", json=signed_login(local, local["worker3"], local.workerpool))
    assert (stranger.status_code, stranger.json()["rule"]) == (403, "worker.unknown")
    other_pool = http.post("/v1/login", json=signed_login(local, local["worker1"], ZERO))
    assert (other_pool.status_code, other_pool.json()["rule"]) == (403, "login.workerpool")
    no_session = http.post("/v1/work")
    assert (no_session.status_code, no_session.json()["rule"]) == (401, "session.missing")
    forged = http.post("/v1/work", headers={"Authorization": "Bearer forged"})
    assert (forged.status_code, forged.json()["rule"]) == (401, "session.unknown")
    unregistered = http.post(
        "/v1/work", headers={"Authorization": f"Bearer {login_token(local, http, 'worker1')}"}
    )
    assert (unregistered.status_code, unregistered.json()["rule"]) == (409, "worker.capabilities")


def test_work_is_pulled_started_and_failed_with_a_typed_cause(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    scheduler, http = pool
    deal = local.match(trust=1)
    scheduler.step()
    w1, w2 = SimulatedWorker(local, "worker1", http), SimulatedWorker(local, "worker2", http)
    w1.login()
    w2.login()

    work = w1.pull()
    assert work is not None
    taskid = "0x" + deal.task_id(deal.deal.bot_first).hex()
    assert (work["taskid"], work["dealid"], work["params"]) == (
        taskid, "0x" + deal.dealid.hex(), deal.params,
    )  # fmt: skip
    assert work["app"]["type"] == "WASM" and work["app"]["multiaddr"] == "ipfs://mandelbrot.wasm"
    assert DealTerms.model_validate(work["deal"]).trust == "1"
    authorization = WorkerpoolAuthorization(w1.address, bytes.fromhex(taskid[2:]), ZERO)
    signer = recover_signer(
        authorization_digest(authorization, local["pool_owner"].hub.domain),
        bytes.fromhex(work["authorization"][2:]),
    )
    assert signer == local["pool_owner"].address
    assert w2.pull() is None, "trust 1: one replicate is enough"

    assert w1.report(taskid, "started").json()["state"] == "running"
    failed = w1.report(taskid, "failed", cause="out-of-fuel", message="fuel exhausted after 1e11")
    assert failed.json()["state"] == "failed"
    again = w1.report(taskid, "started")
    assert (again.status_code, again.json()["rule"]) == (409, "replicate.state")
    assert "ReplicateFailed" in again.json()["detail"], "the refusal tells the task's story"

    status = http.get(f"/v1/tasks/{taskid}").json()
    assert status["state"] == "active"
    (replicate,) = status["replicates"]
    assert (replicate["worker"], replicate["state"], replicate["cause"]) == (
        w1.address, "failed", "out-of-fuel",
    )  # fmt: skip
    assert replicate["message"] == "fuel exhausted after 1e11"
    assert replicate["advice"].startswith("The task needs more computation than its fuel limit")
    assert w2.pull() is not None, "the failed replicate is replaced"
    unknown = w2.report("0x" + "00" * 32, "started")
    assert (unknown.status_code, unknown.json()["rule"]) == (404, "replicate.unknown")


def test_only_the_requester_reads_the_size_capped_logs(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    scheduler, http = pool
    local.match(trust=1)
    scheduler.step()
    w1 = SimulatedWorker(local, "worker1", http)
    w1.login()
    work = w1.pull()
    assert work is not None
    taskid = work["taskid"]
    logs = {
        "stdout": base64.b64encode(b"0123456789abcdefOVERFLOW").decode(),
        "stderr": base64.b64encode(b"warning").decode(),
        "stdout_total_bytes": 5000,
        "stderr_total_bytes": 7,
    }
    assert w1.call("PUT", f"/v1/replicates/{taskid}/logs", json=logs).status_code == 204

    def read_as(name: str) -> dict[str, Any]:
        party = local[name]
        request = LogsRequest(taskid=taskid)
        auth = sign_request(
            request,
            service=SERVICE_NAME,
            action=TASK_LOGS,
            domain=party.hub.domain,
            private_key=party.key,
            signer=party.address,
        )
        body = {"request": request.model_dump(mode="json"), "auth": auth.model_dump(mode="json")}
        answer: dict[str, Any] = http.post(f"/v1/tasks/{taskid}/logs", json=body).json()
        return answer

    assert read_as("stranger")["rule"] == "logs.not_requester"
    (replicate,) = read_as("requester")["replicates"]
    assert base64.b64decode(replicate["stdout"]) == b"0123456789abcdef"
    assert replicate["stdout_total_bytes"] == 5000
    assert base64.b64decode(replicate["stderr"]) == b"warning"


def test_metrics_and_openapi_describe_the_pool(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    scheduler, http = pool
    local.match(trust=3, volume=2)
    scheduler.step()
    metrics = http.get("/metrics").text
    assert 'decloud_scheduler_tasks{state="pending"} 2.0' in metrics
    assert "decloud_scheduler_workers_alive 0.0" in metrics
    paths = set(http.get("/openapi.json").json()["paths"])
    assert {
        "/v1/login", "/v1/workers/me/capabilities", "/v1/workers/me/ping", "/v1/work",
        "/v1/replicates/{taskid}/started", "/v1/replicates/{taskid}/contributed",
        "/v1/replicates/{taskid}/revealed", "/v1/replicates/{taskid}/failed",
        "/v1/replicates/{taskid}/result", "/v1/replicates/{taskid}/logs",
        "/v1/tasks/{taskid}", "/v1/tasks/{taskid}/logs", "/v1/deals/{dealid}", "/v1/info",
    } <= paths  # fmt: skip
    info = http.get("/v1/info").json()
    assert (info["workerpool"], info["owner"]) == (local.workerpool, local["pool_owner"].address)


def test_deal_terms_mirror_the_protocol_deal() -> None:
    from dataclasses import fields

    from decloud.protocol.hub import Deal

    assert list(DealTerms.model_fields) == [item.name for item in fields(Deal)]


def test_no_request_makes_the_scheduler_fail(
    local: LocalMarket, pool: tuple[Scheduler, TestClient]
) -> None:
    """Schemathesis fuzzes every operation, as a logged-in worker with work in progress:
    whatever it sends, no answer is a 5xx."""
    scheduler, http = pool
    local.match(trust=3)
    scheduler.step()
    worker = SimulatedWorker(local, "worker1", http)
    worker.login()
    assert worker.pull() is not None
    headers = {"Authorization": f"Bearer {worker.token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", http.app)
    for operation in schema.get_all_operations():
        assert isinstance(operation, Ok), operation
        _fuzz(operation.ok().as_strategy(), headers)


def _fuzz(cases: st.SearchStrategy[Any], headers: dict[str, str]) -> None:
    @given(case=cases)
    @settings(
        max_examples=15, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def no_server_error(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    no_server_error()


def test_a_write_that_waits_too_long_for_the_database_is_answered_503_and_frees_its_thread(
    local: LocalMarket, pool: tuple[Scheduler, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unbounded waits by as many requests as the API has threads would leave none for the
    request holding the lock: the wait is bounded, and the worker is told to ask again."""
    scheduler, http = pool
    token = login_token(local, http, "worker1")
    monkeypatch.setattr(engine, "WRITER_WAIT_S", 0.2)

    with write_transaction(scheduler.database):
        answer = http.post("/v1/workers/me/ping", headers={"Authorization": f"Bearer {token}"})

    assert (answer.status_code, answer.json()["rule"]) == (503, "database.busy")
    outer = write_transaction(scheduler.database)
    with outer, pytest.raises(engine.WriterBusy), write_transaction(scheduler.database):
        pass
    after = http.post("/v1/workers/me/ping", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 200, after.text
