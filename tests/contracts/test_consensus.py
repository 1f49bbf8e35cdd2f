"""Sarmenta credibility consensus, reputation scores and the sharing of rewards.

A worker with score s weighs w = max(s // 3, 3) - 1; a result's group weighs the product of
its supporters' weights; with trust T it wins when group * T > (1 + sum of groups) * (T - 1).
Finalize shares reward pool = workerpool price + seized stakes: the workers get
pool * (100 - scheduler ratio) // 100, split by weight, and the scheduler the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from decloud.protocol import result_hash
from tests.contracts.harness import Deal, Protocol

GOOD, BAD = b"\x01" * 32, b"\x02" * 32
ACTIVE, REVEALING = 1, 2


@pytest.fixture(autouse=True)
def _hub_holds_every_balance(protocol: Protocol) -> Iterator[None]:
    """After every test: tokens held by the hub == free + locked of every actor + kitty."""
    yield
    assert protocol.hub_balance_matches()


def weight(score: int) -> int:
    return max(score // 3, 3) - 1


def run_pair_tasks(protocol: Protocol, pair: list[str], tasks: int) -> None:
    """Both workers vote GOOD, reveal and are paid on `tasks` trust-3 tasks: +1 score each."""
    deal = protocol.match(request_order=protocol.request_order(trust=3, volume=tasks))
    for index in range(tasks):
        for worker in pair:
            protocol.contribute(deal, index, worker, GOOD)
        for worker in pair:
            protocol.reveal(deal, index, worker, GOOD)
        protocol.finalize(deal, index, pair)


def score(protocol: Protocol, worker: str) -> int:
    return protocol.account(protocol[worker])[2]


def fresh_task(protocol: Protocol, trust: int) -> Deal:
    return protocol.match(request_order=protocol.request_order(trust=trust))


@pytest.mark.parametrize(("trust", "votes"), [(1, 1), (2, 1), (3, 2), (5, 3), (10, 4), (100, 7)])
def test_votes_needed_by_fresh_workers(protocol: Protocol, trust: int, votes: int) -> None:
    workers = [f"worker{i}" for i in range(1, votes + 1)]
    for worker in workers:
        protocol.ensure_actor(worker)
    deal = fresh_task(protocol, trust)
    for worker in workers[:-1]:
        protocol.contribute(deal, 0, worker, GOOD)
        assert protocol.task(deal, 0).status == ACTIVE
    protocol.contribute(deal, 0, workers[-1], GOOD)
    consensus = protocol.hub.get_logs()[-1]
    task = protocol.task(deal, 0)
    assert (task.status, task.winners, task.total_weight) == (REVEALING, votes, 2**votes)
    taskid = protocol.task_id(deal, 0)
    assert type(consensus).__name__ == "TaskConsensus"
    assert bytes(consensus.consensus) == result_hash(taskid, GOOD)
    assert tuple(protocol.hub.viewGroup(taskid, result_hash(taskid, GOOD))) == (
        2**votes,
        votes,
        True,
    )


def test_a_competing_result_raises_the_votes_needed(protocol: Protocol) -> None:
    """Trust 3 with one BAD vote: GOOD needs 3 votes, since 4 * 3 > (1 + 2 + 4) * 2 fails."""
    deal = fresh_task(protocol, 3)
    protocol.contribute(deal, 0, "worker4", BAD)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.contribute(deal, 0, "worker2", GOOD)
    assert protocol.task(deal, 0).status == ACTIVE
    protocol.contribute(deal, 0, "worker3", GOOD)
    task = protocol.task(deal, 0)
    assert (task.status, task.winners, task.total_weight) == (REVEALING, 3, 2 + 8)


def test_score_grows_by_one_per_proven_task_with_several_contributors(protocol: Protocol) -> None:
    run_pair_tasks(protocol, ["worker1", "worker2"], 3)
    assert (score(protocol, "worker1"), score(protocol, "worker2")) == (3, 3)
    assert score(protocol, "worker3") == 0


def test_worker_whose_weight_reaches_the_trust_wins_alone(protocol: Protocol) -> None:
    """weight(11) = 2 < 3 but weight(12) = 3 >= trust 3: 3 * 3 > (3 + 1) * 2."""
    run_pair_tasks(protocol, ["worker1", "worker2"], 11)
    assert score(protocol, "worker1") == 11
    deal = fresh_task(protocol, 3)
    protocol.contribute(deal, 0, "worker1", GOOD)
    taskid = protocol.task_id(deal, 0)
    assert protocol.hub.viewContribution(taskid, protocol["worker1"].address)[1] == weight(11) == 2
    assert protocol.task(deal, 0).status == ACTIVE

    run_pair_tasks(protocol, ["worker1", "worker2"], 1)
    assert score(protocol, "worker1") == 12
    deal = fresh_task(protocol, 3)
    protocol.contribute(deal, 0, "worker1", GOOD)
    taskid = protocol.task_id(deal, 0)
    assert protocol.hub.viewContribution(taskid, protocol["worker1"].address)[1] == weight(12) == 3
    task = protocol.task(deal, 0)
    assert (task.status, task.winners) == (REVEALING, 1)
    protocol.reveal(deal, 0, "worker1", GOOD)
    protocol.finalize(deal, 0, ["worker1"])
    assert score(protocol, "worker1") == 12, "a lone contributor earns no score"


def test_wrong_minority_loses_its_stake_and_a_third_of_its_score(protocol: Protocol) -> None:
    run_pair_tasks(protocol, ["worker3", "worker4"], 7)
    assert score(protocol, "worker3") == 7
    deal = fresh_task(protocol, 3)
    protocol.contribute(deal, 0, "worker3", BAD)
    for worker in ("worker1", "worker2", "worker4"):
        protocol.contribute(deal, 0, worker, GOOD)
    for worker in ("worker1", "worker2", "worker4"):
        protocol.reveal(deal, 0, worker, GOOD)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1", "worker2", "worker3", "worker4"])
    faulty = [e for e in protocol.hub.get_logs() if type(e).__name__ == "FaultyContribution"]
    # Reward pool 100 + 30 = 130; workers' share 130 * 99 // 100 = 128; three winners of
    # weight 2 get 128 * 2 // 6 = 42 each; the scheduler keeps 130 - 126 = 4.
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (4 + 30, -30),
        "worker1": (42 + 30, -30),
        "worker2": (42 + 30, -30),
        "worker3": (0, -30),
        "worker4": (42 + 30, -30),
    }
    assert protocol.hub_balance_matches()
    assert score(protocol, "worker3") == 7 * 2 // 3 == 4
    assert [(e.worker, e.score) for e in faulty] == [(protocol["worker3"].address, 4)]
    assert (score(protocol, "worker1"), score(protocol, "worker4")) == (1, 8)


def test_honest_majority_shares_by_weight(protocol: Protocol) -> None:
    """worker1 and worker2 (score 12, weight 3) and worker3 (fresh, weight 2) outvote
    worker4 (BAD, weight 2) at trust 3: 6 * 3 > (2 + 6 + 1) * 2 fails, 18 * 3 > 21 * 2 holds.
    The stake worker4 loses is shared by weight."""
    run_pair_tasks(protocol, ["worker1", "worker2"], 12)
    deal = fresh_task(protocol, 3)
    protocol.contribute(deal, 0, "worker4", BAD)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.contribute(deal, 0, "worker3", GOOD)
    assert protocol.task(deal, 0).status == ACTIVE
    protocol.contribute(deal, 0, "worker2", GOOD)
    taskid = protocol.task_id(deal, 0)
    assert tuple(protocol.hub.viewGroup(taskid, result_hash(taskid, GOOD))) == (18, 3, True)
    assert tuple(protocol.hub.viewGroup(taskid, result_hash(taskid, BAD))) == (2, 1, False)
    assert protocol.task(deal, 0).total_weight == 2 + 18
    for worker in ("worker1", "worker2", "worker3"):
        protocol.reveal(deal, 0, worker, GOOD)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1", "worker2", "worker3", "worker4"])
    # Pool 100 + 30 = 130, workers' share 128 over weight 8: 48, 48 and 32; the scheduler
    # keeps 130 - 128 = 2.
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (2 + 30, -30),
        "worker1": (48 + 30, -30),
        "worker2": (48 + 30, -30),
        "worker3": (32 + 30, -30),
        "worker4": (0, -30),
    }
    assert protocol.hub_balance_matches()
    assert [score(protocol, w) for w in ("worker1", "worker2", "worker3", "worker4")] == [
        13,
        13,
        1,
        0,
    ]


@pytest.mark.parametrize(("stake_ratio", "scheduler_ratio"), [(0, 0), (100, 90), (50, 25)])
def test_pool_policy_sets_stakes_and_the_scheduler_s_share(
    protocol: Protocol, stake_ratio: int, scheduler_ratio: int
) -> None:
    protocol.workerpools.setWorkerpoolPolicy(
        protocol.workerpool, stake_ratio, scheduler_ratio, sender=protocol["pool_owner"].address
    )
    deal = fresh_task(protocol, 3)
    stake = 100 * stake_ratio // 100
    assert deal.worker_stake == stake
    protocol.contribute(deal, 0, "worker3", BAD)
    for worker in ("worker1", "worker2", "worker4"):
        protocol.contribute(deal, 0, worker, GOOD)
    for worker in ("worker1", "worker2", "worker4"):
        protocol.reveal(deal, 0, worker, GOOD)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1", "worker2", "worker3", "worker4"])
    pool = 100 + stake
    share = pool * (100 - scheduler_ratio) // 100
    each = share * 2 // 6
    expected = {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (pool - 3 * each + 30, -30),
        "worker1": (each + stake, -stake),
        "worker2": (each + stake, -stake),
        "worker3": (0, -stake),
        "worker4": (each + stake, -stake),
    }
    assert protocol.changes(before) == {k: v for k, v in expected.items() if v != (0, 0)}
    assert protocol.hub_balance_matches()
