"""Worker agents against a real scheduler, a real result store and a real anvil chain: tasks
complete, their result is downloadable and matches the digest revealed on-chain, a wrong
module is refused with its cause, and a worker stopped after its vote reveals it after its
restart."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update

from decloud.protocol.hub import TASK_COMPLETED
from decloud.runtime.spec import FailureCause
from decloud.scheduler.api import SERVICE_NAME, TASK_LOGS
from decloud.scheduler.models import SessionRow, WorkerRow
from decloud.scheduler.schemas import LogsRequest
from decloud.scheduler.state import WorkerCause
from decloud.service.auth import sign_request
from decloud.storage.chain import ResultChain
from decloud.storage.cid import RESULT_LINK_PREFIX
from decloud.storage.client import StorageClient
from tests.worker.pool import SLOWER, Apps, Pool, RunningWorker, WorkerFactory, wait_for


def assert_result_downloadable(
    pool: Pool, taskid: bytes, winners: list[RunningWorker], tmp: Path
) -> None:
    """The task is completed on-chain with the link a winner reported, and the archive
    behind the link has the digest every winner revealed."""
    local = pool.local
    assert local["requester"].hub.task(taskid).status == TASK_COMPLETED
    link = pool.task(taskid)["results"]
    assert link.startswith(RESULT_LINK_PREFIX)
    chain = ResultChain(local.rpc_url, local.deployment)
    revealed = {chain.revealed_digest(taskid, local[w.name].address) for w in winners}
    assert len(revealed) == 1 and None not in revealed
    (digest,) = revealed
    with StorageClient(pool.store_url) as store:
        result = store.download(
            link.removeprefix(RESULT_LINK_PREFIX), tmp / "result", expected_digest=digest
        )
    assert (result.path / "mandelbrot.ppm").read_bytes().startswith(b"P6\n32 32\n")


def test_a_trust_1_task_completes_with_one_worker(
    pool: Pool, workers: WorkerFactory, apps: Apps, tmp_path: Path
) -> None:
    worker = workers.start("worker1")
    taskid = pool.match(apps.by_file, trust=1)

    pool.wait_for_task(taskid, "completed")
    record = worker.wait_finished(taskid)

    assert record.state == "done"
    assert record.link == pool.task(taskid)["results"]
    assert [entry.change.split(":")[0] for entry in record.story] == [
        "-> pulled", "pulled -> downloading", "downloading -> running", "running -> contributing",
        "contributing -> contributed", "contributed -> revealing", "revealing -> uploading",
        "uploading -> done",
    ]  # fmt: skip
    assert not (worker.worker.shell.work_dir(taskid)).exists(), "the work dir is cleaned up"
    assert_result_downloadable(pool, taskid, [worker], tmp_path)
    (logs,) = requester_logs(pool, taskid)
    assert base64.b64decode(logs["stdout"]).startswith(b"rendered 32x32 pixels")


def requester_logs(pool: Pool, taskid: bytes) -> list[dict[str, Any]]:
    """The app's output streams of each replicate, as the requester reads them."""
    requester = pool.local["requester"]
    request = LogsRequest(taskid="0x" + taskid.hex())
    auth = sign_request(
        request,
        service=SERVICE_NAME,
        action=TASK_LOGS,
        domain=requester.hub.domain,
        private_key=requester.key,
        signer=requester.address,
    )
    body = {"request": request.model_dump(mode="json"), "auth": auth.model_dump(mode="json")}
    answer = httpx.post(f"{pool.url}/v1/tasks/0x{taskid.hex()}/logs", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    replicates: list[dict[str, Any]] = answer.json()["replicates"]
    return replicates


def test_a_trust_3_task_completes_with_two_workers_and_a_module_served_over_http(
    pool: Pool, workers: WorkerFactory, apps: Apps, tmp_path: Path
) -> None:
    started = [workers.start("worker1"), workers.start("worker2")]
    taskid = pool.match(apps.by_http, trust=3)

    status = pool.wait_for_task(taskid, "completed")
    records = [worker.wait_finished(taskid) for worker in started]

    assert [record.state for record in records] == ["done", "done"]
    assert {replicate["state"] for replicate in status["replicates"]} == {"revealed"}
    assert records[0].digest == records[1].digest
    assert_result_downloadable(pool, taskid, started, tmp_path)


def test_a_module_that_is_not_the_registered_one_is_refused_with_its_cause(
    pool: Pool, workers: WorkerFactory, apps: Apps
) -> None:
    worker = workers.start("worker1")
    taskid = pool.match(apps.tampered, trust=1)

    record = worker.wait_finished(taskid)

    assert (record.state, record.cause) == ("failed", FailureCause.CHECKSUM_MISMATCH)
    assert "registered checksum is 0x2d711642" in record.message
    (replicate,) = pool.task(taskid)["replicates"]
    assert (replicate["state"], replicate["cause"]) == ("failed", "checksum-mismatch")
    assert "registered checksum" in replicate["message"]
    assert replicate["advice"] == FailureCause.CHECKSUM_MISMATCH.advice
    assert pool.local["requester"].hub.task(taskid).contributors == 0, "nothing was staked"


def test_a_worker_without_the_stake_says_how_much_to_deposit(
    pool: Pool, workers: WorkerFactory, apps: Apps
) -> None:
    worker = workers.start("pauper")
    taskid = pool.match(apps.by_file, trust=1)

    record = worker.wait_finished(taskid)

    assert (record.state, record.cause) == ("failed", WorkerCause.STAKE_TOO_LOW)
    (replicate,) = pool.task(taskid)["replicates"]
    assert (replicate["state"], replicate["cause"]) == ("failed", "stake-too-low")
    assert "deposit at least" in replicate["message"]
    assert record.story[-1].change.startswith("pulled -> failed"), "nothing was downloaded or run"


@pytest.mark.parametrize(
    "pool", [{"progress_timeout_s": 0.5, "ping_interval_s": 0.2}], indirect=True
)
def test_a_replicate_the_scheduler_gave_up_is_dropped_before_its_vote(
    pool: Pool, workers: WorkerFactory, apps: Apps
) -> None:
    worker = workers.start("worker1")
    taskid = pool.match(apps.by_file, trust=1, params=SLOWER)
    worker.wait_until(taskid, "running")

    # The scheduler finds it stalled half a second after its start, and the next ping
    # (every 0.2 s) withdraws it, seconds before the app is done.
    record = worker.wait_finished(taskid)

    assert record.state == "dropped"
    assert "no longer lists it" in record.message
    assert record.digest is None and record.contribute_tx is None
    (replicate,) = pool.task(taskid)["replicates"]
    assert (replicate["state"], replicate["cause"]) == ("lost", "stalled")
    assert pool.local["requester"].hub.task(taskid).contributors == 0, "nothing was staked"


def test_a_worker_stopped_after_its_vote_reveals_it_after_a_restart(
    pool: Pool, workers: WorkerFactory, apps: Apps, tmp_path: Path
) -> None:
    first = workers.start("worker1")
    taskid = pool.match(apps.by_file, trust=3)
    first.wait_until(taskid, "contributed")
    first.stop()  # the vote waits for a second one, which comes while the worker is down

    second = workers.start("worker2")
    second.wait_until(taskid, "contributed")
    restarted = workers.start("worker1")

    pool.wait_for_task(taskid, "completed")
    record = restarted.wait_finished(taskid)
    assert record.state == "done"
    changes = [entry.change for entry in record.story]
    assert changes.count("contributing -> contributed") == 1
    assert "contributed -> revealing" in changes
    assert pool.local["requester"].hub.task(taskid).contributors == 2
    assert_result_downloadable(pool, taskid, [restarted, second], tmp_path)


def test_a_worker_the_scheduler_forgot_logs_in_and_registers_again(
    pool: Pool, workers: WorkerFactory, apps: Apps
) -> None:
    worker = workers.start("worker1")
    address = pool.local["worker1"].address
    wait_for(lambda: registered(pool, address), "the worker registers")
    with pool.scheduler.database.transaction() as session:
        session.execute(delete(SessionRow))
        session.execute(update(WorkerRow).values(runtimes=None))

    taskid = pool.match(apps.by_file, trust=1)

    pool.wait_for_task(taskid, "completed")
    assert registered(pool, address)
    assert worker.wait_finished(taskid).state == "done"


def registered(pool: Pool, address: str) -> bool:
    with pool.scheduler.database.transaction() as session:
        row = session.get(WorkerRow, address)
        return row is not None and row.runtimes is not None
