"""Deadlines on a real chain: the scheduler reopens a task whose winners stayed silent, and
claims one that could not complete, instead of letting it pass its final deadline silently.
The chain's clock is moved forward; the scheduler reads time from the chain."""

from __future__ import annotations

from pathlib import Path

from decloud.chain import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.protocol.hub import TASK_COMPLETED, TASK_FAILED
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

T = 300
"""The XS category of the local market's orders."""


def test_silent_winners_make_the_scheduler_reopen_the_task_for_others(
    local: LocalMarket, anvil: Anvil, tmp_path: Path
) -> None:
    settings = scheduler_settings(local, tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    with serving(settings, run_loop=True) as (_, http):
        deal = local.match(trust=3)
        taskid = "0x" + deal.task_id(deal.deal.bot_first).hex()
        workers = [SimulatedWorker(local, f"worker{n}", http) for n in (1, 2, 3, 4)]
        for worker in workers:
            worker.login()
        wait_for(lambda: http.get(f"/v1/tasks/{taskid}").status_code == 200, "the deal is seen")
        silent, honest = workers[:2], workers[2:]
        for worker in silent:
            assert worker.pull() is not None
            contribute(worker, deal, taskid)
        wait_for(lambda: state_of(http, taskid) == "revealing", "consensus is seen")

        anvil.evm_increase_time(2 * T + 1)
        anvil.evm_mine()
        wait_for(lambda: state_of(http, taskid) == "active", "the task is reopened")
        causes = {r["cause"] for r in http.get(f"/v1/tasks/{taskid}").json()["replicates"]}
        assert causes == {"not-revealed"}
        for worker in honest:
            assert worker.pull() is not None, "the discarded votes are replaced"
            contribute(worker, deal, taskid)
        wait_for(lambda: state_of(http, taskid) == "revealing", "the new consensus is seen")
        for worker in honest:
            worker.party.hub.reveal(bytes.fromhex(taskid[2:]), DIGEST)
        wait_for(lambda: upload_requested(honest[0]), "the new winners are asked for the result")
        honest[0].report(taskid, "result", link=LINK)
        wait_for(lambda: state_of(http, taskid) == "completed", "the task is finalized")
    assert local["requester"].hub.task(bytes.fromhex(taskid[2:])).status == TASK_COMPLETED


def test_a_task_that_cannot_complete_is_claimed_at_its_final_deadline(
    local: LocalMarket, anvil: Anvil, tmp_path: Path
) -> None:
    settings = scheduler_settings(local, tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    with serving(settings, run_loop=True) as (_, http):
        deal = local.match(trust=3)
        taskid = "0x" + deal.task_id(deal.deal.bot_first).hex()
        lonely = SimulatedWorker(local, "worker1", http)
        lonely.login()
        wait_for(lambda: http.get(f"/v1/tasks/{taskid}").status_code == 200, "the deal is seen")
        assert lonely.pull() is not None
        contribute(lonely, deal, taskid)

        anvil.evm_increase_time(10 * T + 1)
        anvil.evm_mine()
        wait_for(lambda: state_of(http, taskid) == "failed", "the task is claimed")
        status = http.get(f"/v1/tasks/{taskid}").json()
    assert local["requester"].hub.task(bytes.fromhex(taskid[2:])).status == TASK_FAILED
    assert status["reason"].startswith("claimed after the final deadline, requester refunded")
