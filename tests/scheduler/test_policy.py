"""The replication policy: how many replicates, and who gets them."""

from __future__ import annotations

import pytest

from decloud.protocol.hub import MAX_CONTRIBUTORS
from decloud.scheduler.policy import Standing, rank, replicates_needed, serves, worker_weight

FRESH = worker_weight(0)
REPUTED = worker_weight(30)


def test_weights_follow_the_credibility_rule() -> None:
    assert (FRESH, worker_weight(12), REPUTED) == (2, 3, 9)


@pytest.mark.parametrize(
    ("trust", "fresh", "reputed"), [(1, 1, 1), (3, 2, 1), (5, 3, 1), (100, 7, 3)]
)
def test_a_new_task_needs_as_many_replicates_as_the_rule_asks(
    trust: int, fresh: int, reputed: int
) -> None:
    assert replicates_needed(trust, {}, [], FRESH, 0) == fresh
    assert replicates_needed(trust, {}, [], REPUTED, 0) == reputed


def test_pending_replicates_count_as_future_agreeing_votes() -> None:
    assert replicates_needed(3, {}, [FRESH], FRESH, 0) == 1
    assert replicates_needed(3, {}, [FRESH, FRESH], FRESH, 0) == 0
    assert replicates_needed(100, {}, [FRESH] * 4, FRESH, 0) == 3


def test_pending_replicates_are_assumed_to_join_the_largest_group() -> None:
    disagreeing = {b"a": [FRESH], b"b": [FRESH, FRESH]}
    # b (weight 4) grows to 8 with the pending vote; total 1 + 2 + 8: 8*3 = 24 > 11*2 = 22.
    assert replicates_needed(3, disagreeing, [FRESH], FRESH, 3) == 0
    # Without it, b at 4 against a total of 7 does not win: one more is needed.
    assert replicates_needed(3, disagreeing, [], FRESH, 3) == 1


def test_a_wrong_group_makes_consensus_harder() -> None:
    assert replicates_needed(3, {b"right": [FRESH]}, [], FRESH, 1) == 1
    assert replicates_needed(3, {b"right": [FRESH], b"wrong": [FRESH]}, [], FRESH, 2) == 2


def test_replicates_never_exceed_the_contribution_cap() -> None:
    assert replicates_needed(2**32, {}, [], FRESH, 0) == MAX_CONTRIBUTORS
    assert replicates_needed(2**32, {b"a": [FRESH] * 30}, [FRESH], FRESH, 30) == 1
    assert replicates_needed(2**32, {b"a": [FRESH] * 32}, [], FRESH, 32) == 0


def standing(address: str, **changes: object) -> Standing:
    values: dict[str, object] = {
        "address": address, "active": 0, "slots": 1, "score": 0, "successes": 0,
        "failures": 0, "last_assigned": None,
    }  # fmt: skip
    values.update(changes)
    return Standing(**values)  # type: ignore[arg-type]


def test_idle_workers_come_before_busy_ones() -> None:
    busy, idle = standing("0xA", active=1, slots=2), standing("0xB")
    assert [s.address for s in rank([busy, idle])] == ["0xB", "0xA"]


def test_reliable_workers_come_before_flaky_ones_then_reputed_before_fresh() -> None:
    flaky = standing("0xA", failures=3, successes=1)
    reliable = standing("0xB", successes=4)
    reputed = standing("0xC", successes=4, score=30)
    assert [s.address for s in rank([flaky, reliable, reputed])] == ["0xC", "0xB", "0xA"]


def test_equal_workers_take_turns() -> None:
    served_long_ago = standing("0xB", last_assigned=10.0)
    served_recently = standing("0xA", last_assigned=20.0)
    never_served = standing("0xC")
    assert [s.address for s in rank([served_recently, served_long_ago, never_served])] == [
        "0xC", "0xB", "0xA",
    ]  # fmt: skip


def test_a_worker_is_served_while_better_workers_cannot_take_all_the_work() -> None:
    ready = [standing("0xA"), standing("0xB", active=1, slots=2)]
    assert serves("0xA", ready, demand=1)
    assert not serves("0xB", ready, demand=1)
    assert serves("0xB", ready, demand=2)
    assert not serves("0xC", ready, demand=5)
