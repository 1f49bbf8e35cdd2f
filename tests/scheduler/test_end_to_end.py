"""The scheduler running its loop against a real anvil chain: it sees a real deal, hands
replicates to simulated workers (who contribute and reveal with their own keys), and
finalizes the task on-chain, also across a restart in the middle of the task."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from decloud.chain.localnet import LocalMarket
from decloud.protocol.hub import TASK_COMPLETED
from decloud.scheduler.models import HistoryRow, ReplicateRow
from decloud.scheduler.settings import SchedulerSettings
from tests.scheduler.pool import (
    DIGEST,
    LINK,
    SimulatedWorker,
    contribute,
    scheduler_settings,
    serving,
    state_of,
    upload_requested,
    wait_for,
)


def settings_for(local: LocalMarket, tmp_path: Path) -> SchedulerSettings:
    return scheduler_settings(local, tmp_path, f"sqlite:///{tmp_path / 'scheduler.db'}")


def start_task(local: LocalMarket, http: TestClient) -> tuple[str, list[SimulatedWorker]]:
    """A trust-3 deal, seen by the scheduler, whose task two fresh workers contributed to
    until consensus."""
    deal = local.match(trust=3)
    taskid = "0x" + deal.task_id(deal.deal.bot_first).hex()
    workers = [SimulatedWorker(local, name, http) for name in ("worker1", "worker2", "worker3")]
    for worker in workers:
        worker.login()
    wait_for(lambda: http.get(f"/v1/tasks/{taskid}").status_code == 200, "the deal is seen")
    assert [w.pull() is not None for w in workers] == [True, True, False]
    for worker in workers[:2]:
        contribute(worker, deal, taskid)
    wait_for(lambda: state_of(http, taskid) == "revealing", "consensus is seen")
    return taskid, workers


def test_the_scheduler_finalizes_a_real_trust_3_task(local: LocalMarket, tmp_path: Path) -> None:
    with serving(settings_for(local, tmp_path), run_loop=True) as (_, http):
        taskid, (w1, w2, _) = start_task(local, http)
        for worker in (w1, w2):
            receipt = worker.party.hub.reveal(bytes.fromhex(taskid[2:]), DIGEST)
            worker.report(taskid, "revealed", tx_hash=receipt.tx_hash)
        wait_for(lambda: upload_requested(w2), "the winners are asked for the result")
        assert w2.report(taskid, "result", link=LINK).json()["state"] == "revealed"
        wait_for(lambda: state_of(http, taskid) == "completed", "the task is finalized")
        status = http.get(f"/v1/tasks/{taskid}").json()
    assert local["requester"].hub.task(bytes.fromhex(taskid[2:])).status == TASK_COMPLETED
    assert status["results"] == LINK
    assert {r["state"] for r in status["replicates"]} == {"revealed"}


def test_a_restarted_scheduler_resumes_a_task_without_duplicating_it(
    local: LocalMarket, tmp_path: Path
) -> None:
    settings = settings_for(local, tmp_path)
    with serving(settings, run_loop=True) as (_, http):
        taskid, workers = start_task(local, http)
    # The scheduler is down while the winners reveal.
    for worker in workers[:2]:
        worker.party.hub.reveal(bytes.fromhex(taskid[2:]), DIGEST)

    with serving(settings, run_loop=True) as (restarted, http):
        for worker in workers:
            worker.http = http  # sessions live in the database: the tokens still work
        assert workers[2].pull() is None, "no replicate is handed out again"
        wait_for(lambda: upload_requested(workers[0]), "the reveals made while down are seen")
        workers[0].report(taskid, "result", link=LINK)
        wait_for(lambda: state_of(http, taskid) == "completed", "the task is finalized")
        finalizes = restarted.metrics.registry.get_sample_value(
            "decloud_scheduler_actions_total", {"action": "finalize", "outcome": "mined"}
        )
        with restarted.database.transaction() as session:
            replicates = session.scalar(select(func.count()).select_from(ReplicateRow))
            deals_seen = session.scalar(
                select(func.count()).where(HistoryRow.kind == "DealMatched")
            )
    assert (replicates, deals_seen, finalizes) == (2, 1, 1)
    assert local["requester"].hub.task(bytes.fromhex(taskid[2:])).status == TASK_COMPLETED
