"""The scheduler's state machine, without chain, database or clock."""

from __future__ import annotations

from typing import get_args

import pytest

from decloud.protocol.hub import MAX_CONTRIBUTORS
from decloud.protocol.ids import result_hash
from decloud.runtime.spec import FailureCause
from decloud.scheduler.policy import Policy
from decloud.scheduler.state import (
    ACTING,
    PENDING,
    REPLICATE_STATES,
    REPLICATE_TRANSITIONS,
    TASK_DONE,
    TASK_STATES,
    TASK_TRANSITIONS,
    ActionFailed,
    Capabilities,
    Claim,
    Finalize,
    InvalidTransition,
    InvariantViolation,
    Reopen,
    ReplicateFailed,
    ReplicateStarted,
    ReplicateState,
    ResultUploaded,
    SchedulerCause,
    SignAuthorization,
    TaskClaimed,
    TaskFinalized,
    TaskReopened,
    TaskState,
    WorkerCause,
    WorkerPing,
    parse_cause,
)
from tests.scheduler.scenario import RIGHT, START, WASM, WRONG, Scenario, T

# --- the tables -------------------------------------------------------------------------


def test_every_state_has_one_row_of_allowed_moves_between_declared_states() -> None:
    assert set(TASK_TRANSITIONS) == TASK_STATES == set(get_args(TaskState))
    assert set(REPLICATE_TRANSITIONS) == REPLICATE_STATES == set(get_args(ReplicateState))
    assert all(targets <= TASK_STATES for targets in TASK_TRANSITIONS.values())
    assert all(targets <= REPLICATE_STATES for targets in REPLICATE_TRANSITIONS.values())


def test_finished_tasks_and_replicates_never_move_again() -> None:
    assert all(not TASK_TRANSITIONS[state] for state in TASK_DONE)
    assert not REPLICATE_TRANSITIONS["revealed"]
    assert not REPLICATE_TRANSITIONS["rejected"]


def test_every_unfinished_task_can_end_by_a_claim() -> None:
    assert all("failed" in TASK_TRANSITIONS[s] for s in TASK_STATES - TASK_DONE)


def test_every_cause_parses_back() -> None:
    for kind in (FailureCause, WorkerCause, SchedulerCause):
        for cause in kind:
            assert parse_cause(str(cause)) is cause
            assert cause.advice
    with pytest.raises(ValueError, match="unknown replicate cause"):
        parse_cause("bad-luck")


# --- a task from deal to finalize -----------------------------------------------------------


def test_a_trust_3_task_goes_from_deal_to_finalize_with_two_fresh_workers() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    w1, w2, w3 = s.worker(1), s.worker(2), s.worker(3)

    assert s.pull(w1) == taskid
    assert s.pull(w2) == taskid
    assert s.pull(w3) is None, "two pending fresh replicates reach trust 3"
    assert [i for i in s.instructions if isinstance(i, SignAuthorization)] == [
        SignAuthorization(taskid, w1),
        SignAuthorization(taskid, w2),
    ]

    s.send(ReplicateStarted(now=s.now, taskid=taskid, worker=w1))
    s.contribute(taskid, w1)
    s.contribute(taskid, w2)
    s.consensus(taskid)
    assert s.state.tasks[taskid].state == "revealing"
    assert s.reveal(taskid, w1) == []
    assert s.reveal(taskid, w2) == [], "waits for the result link"

    finalize = s.send(ResultUploaded(now=s.now, taskid=taskid, worker=w2, link="ipfs://bafy"))
    assert finalize == [Finalize(taskid, (w1, w2), "ipfs://bafy", b"")]
    assert s.state.tasks[taskid].state == "finalizing"

    s.send(TaskFinalized(now=s.now, taskid=taskid, results="ipfs://bafy"))
    task = s.state.tasks[taskid]
    assert task.state == "completed"
    assert {r.state for r in task.replicates.values()} == {"revealed"}


def test_a_reputed_worker_alone_is_enough_for_trust_3() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    veteran, fresh = s.worker(1, score=30), s.worker(2)
    assert s.pull(veteran) == taskid
    assert s.pull(fresh) is None


def test_without_the_result_link_a_task_finalizes_once_the_upload_wait_is_over() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=1)
    w1 = s.worker(1)
    s.pull(w1)
    s.contribute(taskid, w1)
    s.consensus(taskid)
    s.reveal(taskid, w1)
    assert s.tick() == []
    s.later(s.policy.upload_wait_s)
    assert s.tick() == [Finalize(taskid, (w1,), "", b"")]


def test_near_the_final_deadline_a_task_finalizes_without_waiting_for_the_link() -> None:
    """After a reopen, consensus can come so late that the reveal deadline falls within the
    final margin: once every winner revealed, the link is not waited for any longer."""
    s = Scenario(policy=Policy(lost_after_s=1e9, upload_wait_s=1e9, start_timeout_s=1e9))
    taskid, w1, w2 = consensus_on_two(s)
    s.later(2 * T)
    s.tick()
    s.send(TaskReopened(now=s.now, taskid=taskid, contribution_deadline=START + 8 * T))
    w3, w4 = s.worker(3), s.worker(4)
    assert (s.pull(w3), s.pull(w4)) == (taskid, taskid)
    s.later(START + 8 * T - 30 - s.chain_now)
    s.contribute(taskid, w3)
    s.contribute(taskid, w4)
    s.consensus(taskid)
    s.later(30)
    s.reveal(taskid, w3)
    s.reveal(taskid, w4)
    final = START + 10 * T
    s.later(final - s.policy.final_margin_s - 1 - s.chain_now)
    assert s.tick() == []
    s.later(1)
    assert s.tick() == [Finalize(taskid, (w1, w2, w3, w4), "", b"")]
    assert any("FinalDeadlineNear" in entry.event for entry in s.state.tasks[taskid].story)


def test_a_trust_1_contribute_and_finalize_completes_an_active_task() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=1)
    w1 = s.worker(1)
    s.pull(w1)
    s.contribute(taskid, w1, weight=0)
    s.reveal(taskid, w1)
    s.send(TaskFinalized(now=s.now, taskid=taskid, results="ipfs://bafy"))
    assert s.state.tasks[taskid].state == "completed"


def test_a_wrong_vote_is_rejected_when_the_others_reach_consensus() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    w1, w2, w3 = s.worker(1), s.worker(2), s.worker(3)
    s.pull(w1)
    s.pull(w2)
    s.contribute(taskid, w1, WRONG)
    s.contribute(taskid, w2)
    assert s.pull(w3) == taskid, "two disagreeing votes: a third replicate is needed"
    s.contribute(taskid, w3)
    s.consensus(taskid)
    replicates = s.state.tasks[taskid].replicates
    assert replicates[w1].state == "rejected"
    assert replicates[w1].cause is SchedulerCause.WRONG_RESULT
    s.reveal(taskid, w2)
    s.reveal(taskid, w3)
    finalize = s.send(ResultUploaded(now=s.now, taskid=taskid, worker=w3, link="ipfs://x"))
    assert finalize == [Finalize(taskid, (w1, w2, w3), "ipfs://x", b"")], "all contributors"


def test_contributions_never_exceed_the_hub_cap() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=2**32)
    workers = [s.worker(n, capabilities=WASM) for n in range(1, MAX_CONTRIBUTORS + 3)]
    given = [w for w in workers if s.pull(w) == taskid]
    assert len(given) == MAX_CONTRIBUTORS


# --- impossible moves and invariants ------------------------------------------------------


def test_an_impossible_transition_raises_with_the_task_s_story() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    w1 = s.worker(1)
    s.pull(w1)
    s.send(ReplicateFailed(now=s.now, taskid=taskid, worker=w1, cause=FailureCause.OUT_OF_FUEL,
                           message="fuel exhausted"))  # fmt: skip
    with pytest.raises(InvalidTransition) as raised:
        s.send(ReplicateStarted(now=s.now, taskid=taskid, worker=w1))
    error = raised.value
    assert (error.source, error.target) == ("failed", "running")
    assert [entry.event.split("(")[0] for entry in error.story] == [
        "DealMatched",
        "WorkPulled",
        "ReplicateFailed",
    ]
    assert "replicate 0x000000 assigned -> failed" in str(error)
    assert "ReplicateStarted" in str(error)


def test_a_finished_task_cannot_be_reopened() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=1)
    w1 = s.worker(1)
    s.pull(w1)
    s.contribute(taskid, w1)
    s.consensus(taskid)
    s.send(TaskClaimed(now=s.now, taskid=taskid))
    with pytest.raises(InvalidTransition, match="failed -> active"):
        s.send(TaskReopened(now=s.now, taskid=taskid, contribution_deadline=START + 8 * T))


def test_validate_state_reports_every_broken_invariant() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    w1 = s.worker(1)
    s.pull(w1)
    task = s.state.tasks[taskid]
    task.state = "revealing"
    task.replicates[w1].state = "revealed"
    with pytest.raises(InvariantViolation) as raised:
        s.state.validate_state()
    message = str(raised.value)
    assert "no consensus or reveal deadline" in message
    assert "voted without a result hash" in message
    assert "revealed without a digest" in message


# --- re-replication -------------------------------------------------------------------------


def test_a_worker_that_misses_its_pings_loses_its_replicate_to_another() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=1)
    w1, w2 = s.worker(1), s.worker(2)
    assert s.pull(w1) == taskid
    assert s.pull(w2) is None
    s.later(s.policy.lost_after_s / 2)
    s.send(WorkerPing(now=s.now, worker=w2))
    s.later(s.policy.lost_after_s / 2 + 1)
    s.tick()
    lost = s.state.tasks[taskid].replicates[w1]
    assert (lost.state, lost.cause) == ("lost", SchedulerCause.MISSED_PINGS)
    assert s.pull(w2) == taskid
    assert s.pull(w1) is None, "never two replicates of one task for one worker"


def test_a_replicate_that_makes_no_progress_is_replaced() -> None:
    s = Scenario(policy=Policy(start_timeout_s=10, lost_after_s=1e9))
    (taskid,) = s.deal(trust=1)
    w1, w2 = s.worker(1), s.worker(2)
    s.pull(w1)
    s.later(9)
    s.tick()
    assert s.pull(w2) is None
    s.later(1)
    s.tick()
    stalled = s.state.tasks[taskid].replicates[w1]
    assert (stalled.state, stalled.cause) == ("lost", SchedulerCause.STALLED)
    assert s.pull(w2) == taskid


def test_a_lost_worker_that_votes_after_all_counts() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    w1 = s.worker(1)
    s.pull(w1)
    s.later(s.policy.lost_after_s + 1)
    s.tick()
    s.contribute(taskid, w1)
    replicate = s.state.tasks[taskid].replicates[w1]
    assert (replicate.state, replicate.cause, replicate.message) == ("contributed", None, "")


def test_a_replicate_cancelled_at_consensus_may_still_vote_after_a_reopen() -> None:
    s = Scenario(policy=Policy(lost_after_s=1e9))
    (taskid,) = s.deal(trust=3)
    w1, w2, w3 = s.worker(1), s.worker(2), s.worker(3)
    s.pull(w1)
    s.pull(w2)
    s.contribute(taskid, w1, weight=9)  # its reputation grew since it logged in
    s.consensus(taskid)
    assert s.state.tasks[taskid].replicates[w2].state == "cancelled"
    s.later(2 * T)
    s.tick()
    s.send(TaskReopened(now=s.now, taskid=taskid, contribution_deadline=START + 7 * T))
    s.contribute(taskid, w2)
    assert s.state.tasks[taskid].replicates[w2].state == "contributed"
    assert s.pull(w3) == taskid, "one fresh vote is not enough at trust 3"


def test_a_reopen_reported_failed_but_mined_after_all_reopens_the_task() -> None:
    s = Scenario(policy=Policy(lost_after_s=1e9))
    taskid, _, _ = consensus_on_two(s)
    s.later(2 * T)
    s.tick()
    s.send(ActionFailed(now=s.now, taskid=taskid, action="reopen", reason="not mined in time"))
    s.send(TaskReopened(now=s.now, taskid=taskid, contribution_deadline=START + 7 * T))
    assert s.state.tasks[taskid].state == "active"


def test_a_failed_replicate_is_replaced_until_too_many_failed() -> None:
    s = Scenario(policy=Policy(max_failed_replicates=2))
    (taskid,) = s.deal(trust=1)
    w1, w2, w3 = s.worker(1), s.worker(2), s.worker(3)
    for worker in (w1, w2):
        assert s.pull(worker) == taskid
        s.send(ReplicateFailed(now=s.now, taskid=taskid, worker=worker,
                               cause=FailureCause.APP_EXITED, message="exit 1"))  # fmt: skip
    assert s.pull(w3) is None
    task = s.state.tasks[taskid]
    assert "gave up after 2 failed replicates (app-exited)" in task.reason
    assert task.replicates[w1].message == "exit 1"


# --- fairness -----------------------------------------------------------------------------


def test_an_idle_worker_is_preferred_to_a_busy_one() -> None:
    s = Scenario()
    two_slots = Capabilities(cores=4, memory_mb=4096, runtimes=frozenset({"WASM"}), slots=2)
    busy, idle = s.worker(1, capabilities=two_slots), s.worker(2)
    assert s.pull(idle) is None, "no work yet, but the idle worker now waits for some"
    first, second = s.deal(trust=1, size=2)
    assert s.pull(busy) == first
    assert s.pull(busy) is None, "the idle worker waits: it gets the last task"
    assert s.pull(idle) == second


def test_a_reliable_worker_is_preferred_to_one_that_failed() -> None:
    s = Scenario()
    flaky, reliable = s.worker(1), s.worker(2)
    s.state.workers[flaky].failures = 3
    s.state.workers[reliable].successes = 3
    assert s.pull(reliable) is None
    (taskid,) = s.deal(trust=1)
    assert s.pull(flaky) is None
    assert s.pull(reliable) == taskid


def test_equal_workers_share_a_bag_of_tasks_evenly() -> None:
    s = Scenario()
    tasks = s.deal(trust=1, size=9)
    workers = [s.worker(n) for n in (1, 2, 3)]
    served: dict[str, int] = dict.fromkeys(workers, 0)
    while any(t.state in ("pending", "active") and not t.voters for t in s.state.tasks.values()):
        for worker in workers:
            taskid = s.pull(worker)
            if taskid is not None:
                served[worker] += 1
                s.contribute(taskid, worker)
                s.consensus(taskid)
        s.later(0.1)
    assert sorted(served.values()) == [3, 3, 3]
    assert len(tasks) == 9


def test_a_worker_only_gets_tasks_its_capabilities_allow() -> None:
    s = Scenario()
    s.deal(trust=1, runtime="OCI")
    wasm_only = s.worker(1)
    assert s.pull(wasm_only) is None


# --- deadlines ----------------------------------------------------------------------------


def consensus_on_two(s: Scenario, trust: int = 3) -> tuple[bytes, str, str]:
    (taskid,) = s.deal(trust=trust)
    w1, w2 = s.worker(1), s.worker(2)
    s.pull(w1)
    s.pull(w2)
    s.contribute(taskid, w1)
    s.contribute(taskid, w2)
    s.consensus(taskid)
    return taskid, w1, w2


def test_nobody_revealed_by_the_reveal_deadline_so_the_task_reopens() -> None:
    s = Scenario(policy=Policy(lost_after_s=1e9))
    taskid, w1, w2 = consensus_on_two(s)
    s.later(2 * T)
    consensus = result_hash(taskid, RIGHT)
    assert s.tick() == [Reopen(taskid, consensus, (w1, w2))]
    s.send(TaskReopened(now=s.now, taskid=taskid, contribution_deadline=s.chain_now + T))
    task = s.state.tasks[taskid]
    assert task.state == "active"
    assert {r.cause for r in task.replicates.values()} == {SchedulerCause.NOT_REVEALED}
    w3, w4 = s.worker(3), s.worker(4)
    assert (s.pull(w3), s.pull(w4)) == (taskid, taskid), "the discarded votes no longer count"


def test_one_winner_revealed_by_the_reveal_deadline_is_enough_to_finalize() -> None:
    s = Scenario(policy=Policy(lost_after_s=1e9))
    taskid, w1, w2 = consensus_on_two(s)
    s.reveal(taskid, w1)
    s.later(2 * T)
    assert s.tick() == [Finalize(taskid, (w1, w2), "", b"")]
    s.send(TaskFinalized(now=s.now, taskid=taskid, results=""))
    replicates = s.state.tasks[taskid].replicates
    assert (replicates[w2].state, replicates[w2].cause) == ("rejected", SchedulerCause.NOT_REVEALED)


def test_a_refused_finalize_is_decided_again_after_the_retry_delay() -> None:
    s = Scenario(policy=Policy(lost_after_s=1e9, action_retry_s=5))
    taskid, w1, w2 = consensus_on_two(s)
    s.reveal(taskid, w1)
    s.reveal(taskid, w2)
    s.send(ResultUploaded(now=s.now, taskid=taskid, worker=w1, link="ipfs://r"))
    s.send(ActionFailed(now=s.now, taskid=taskid, action="finalize", reason="node down"))
    assert s.state.tasks[taskid].state == "revealing"
    assert s.tick() == []
    s.later(5)
    assert s.tick() == [Finalize(taskid, (w1, w2), "ipfs://r", b"")]


def test_no_task_passes_its_final_deadline_silently() -> None:
    s = Scenario(policy=Policy(lost_after_s=1e9, action_retry_s=5))
    (taskid,) = s.deal(trust=3)
    w1 = s.worker(1)
    s.pull(w1)
    s.contribute(taskid, w1)
    s.later(7 * T)
    s.tick()
    assert "contribution deadline passed" in s.state.tasks[taskid].reason
    s.later(3 * T)
    assert s.tick() == [Claim(taskid, (w1,))]
    assert s.state.tasks[taskid].state == "claimable"
    assert s.tick() == [], "the claim is not sent twice at once"
    s.later(5)
    assert s.tick() == [Claim(taskid, (w1,))], "but retried while it is not seen on-chain"
    s.send(TaskClaimed(now=s.now, taskid=taskid))
    task = s.state.tasks[taskid]
    assert task.state == "failed"
    assert task.replicates[w1].state == "contributed", "no consensus: nobody was wrong"
    assert task.reason.startswith("claimed after the final deadline, requester refunded")
    assert "contribution deadline passed" in task.reason


def test_pending_replicates_end_when_their_task_can_no_longer_use_them() -> None:
    s = Scenario()
    (taskid,) = s.deal(trust=3)
    w1, w2 = s.worker(1), s.worker(2)
    s.pull(w1)
    s.pull(w2)
    s.contribute(taskid, w1, weight=30)
    s.consensus(taskid)
    task = s.state.tasks[taskid]
    assert task.replicates[w2].state == "cancelled"
    assert not task.in_state(PENDING)
    assert task.state not in ACTING
