"""A dishonest worker process (its runtime corrupts every result) votes first on a trust-3
task; three honest `decloud worker run` processes outvote it, with the scheduler on
PostgreSQL. The honest result wins, the dishonest worker loses its stake and a third of its
score, the honest ones are paid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from decloud.protocol.hub import (
    CONTRIBUTION_PROVEN,
    TASK_COMPLETED,
    distribute_rewards,
    kitty_share,
    worker_weight,
)
from decloud.service.postgres import postgres_cluster
from tests.e2e.cluster import Cluster, wait_for

pytestmark = pytest.mark.anvil

HONEST = ["worker1", "worker2", "worker3"]
PARTIES = ["requester", "app_owner", "pool_owner", *HONEST, "faulty"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster.running(tmp_path_factory.mktemp("faulty"), PARTIES) as running:
        yield running


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database on a throwaway PostgreSQL. Tests name it before `cluster`, so that the
    server outlives the schedulers that use it (fixtures end in reverse order)."""
    with postgres_cluster() as postgres:
        yield postgres.new_database()


def test_a_wrong_result_loses_its_stake_and_score_to_three_honest_workers(
    database_url: str, cluster: Cluster, mandelbrot: Path
) -> None:
    local = cluster.local
    # A score to lose: three tasks played on-chain before the scheduler starts.
    local.build_reputation(["faulty", "worker3"], 3)
    app = cluster.register_wasm("mandelbrot-sample", mandelbrot)
    cluster.start_storage()
    scheduler = cluster.start_scheduler(database_url=database_url)
    cluster.start_worker("faulty", scheduler, launcher="tests.e2e.faulty_worker")
    before, kitty = cluster.accounts(), cluster.kitty()
    assert before["faulty"].score == 3

    deal = cluster.match(app, trust=3)
    taskid = deal.task_id(deal.deal.bot_first)
    hub = local["requester"].hub
    # The dishonest vote comes first, so that the honest ones have to outweigh it.
    wait_for(lambda: hub.task(taskid).contributors == 1, "the faulty worker votes")
    cluster.start_workers(HONEST, scheduler)
    status = scheduler.wait_for_task(taskid, {"completed"})

    by_worker = {r["worker"].lower(): r for r in status["replicates"]}
    faulty = by_worker[local["faulty"].address.lower()]
    assert (faulty["state"], faulty["cause"]) == ("rejected", "wrong-result")
    assert "loses its stake" in faulty["advice"]
    proven = [n for n in HONEST if local[n].address.lower() in by_worker]
    assert len(proven) == 3, "two fresh honest votes do not outweigh one wrong vote at trust 3"
    assert all(by_worker[local[n].address.lower()]["state"] == "revealed" for n in proven)
    assert hub.task(taskid).status == TASK_COMPLETED
    contribution = hub.hub.functions.viewContribution(taskid, local["faulty"].address).call()
    assert contribution[0] != CONTRIBUTION_PROVEN
    assert all(
        hub.hub.functions.viewContribution(taskid, local[n].address).call()[0]
        == CONTRIBUTION_PROVEN
        for n in proven
    )

    terms = deal.deal
    rewards = distribute_rewards(
        terms.workerpool_price + terms.worker_stake,
        terms.scheduler_reward_ratio,
        {local[n].address: worker_weight(before[n].score) for n in proven},
    )
    paid = dict(rewards.workers)
    after = cluster.accounts()
    assert after["faulty"].free == before["faulty"].free - terms.worker_stake, "stake seized"
    assert after["faulty"].locked == before["faulty"].locked
    assert after["faulty"].score == before["faulty"].score * 2 // 3 == 2
    for name in proven:
        assert after[name].free == before[name].free + paid[local[name].address]
        assert after[name].locked == before[name].locked
        assert after[name].score == before[name].score + 1
    assert after["pool_owner"].free == (
        before["pool_owner"].free + rewards.scheduler + kitty_share(kitty)
    )
    assert after["requester"].free == before["requester"].free - terms.task_price
    assert after["app_owner"].free == before["app_owner"].free + terms.app_price
    cluster.assert_conserved()
