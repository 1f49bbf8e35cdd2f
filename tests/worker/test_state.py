"""The replicate state machine without any I/O: its table, its decisions, its refusals, and
resuming from each state it persists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from decloud.protocol.hub import TASK_ACTIVE, TASK_COMPLETED, TASK_REVEALING
from decloud.runtime.spec import FailureCause
from decloud.scheduler.state import WorkerCause
from decloud.worker.journal import Journal
from decloud.worker.state import (
    FINAL,
    STATES,
    TRANSITIONS,
    CheckChain,
    CleanUp,
    Computed,
    Contribute,
    Contributed,
    ContributionFailed,
    Event,
    Fetch,
    Fetched,
    FetchFailed,
    InvalidTransition,
    InvariantViolation,
    ReplicateMachine,
    ReplicateState,
    Report,
    ReportFailure,
    Reveal,
    Revealed,
    Run,
    RunFailed,
    Upload,
    UploadFailed,
    WatchTask,
    Withdrawn,
)
from tests.worker.replicas import (
    DIGEST,
    PATH,
    STAKE,
    TASKID,
    assignment,
    checked,
    machine_in,
    seen,
)


def test_every_state_is_reachable_and_every_unfinished_one_can_move_on() -> None:
    sources = {source for source, _ in TRANSITIONS}
    targets = {target for allowed in TRANSITIONS.values() for target in allowed}
    assert targets | {"pulled"} == STATES
    for state in STATES - FINAL:
        assert any(
            target != state for (source, _), allowed in TRANSITIONS.items()
            if source == state for target in allowed
        ), f"{state} is a dead end"  # fmt: skip
    assert sources == STATES


def test_a_replicate_goes_from_its_pull_to_its_upload() -> None:
    machine = ReplicateMachine.pulled(assignment(), 0.0)
    assert machine.resume() == [CheckChain(TASKID)]
    instructions = []
    for target, event in PATH:
        instructions.append(machine.handle(event))
        machine.validate()
        assert machine.state == target
    assert instructions == [
        [Report(TASKID, "started"), Fetch(TASKID)],
        [Run(TASKID, "/cache/app.wasm", None, ())],
        [Contribute(TASKID, DIGEST)],
        [Report(TASKID, "contributed", "0x" + "c0" * 32), WatchTask(TASKID, DIGEST, wait=False)],
        [Reveal(TASKID, DIGEST)],
        [Report(TASKID, "revealed", "0x" + "e0" * 32), Upload(TASKID, b"")],
        [CleanUp(TASKID)],
    ]
    assert machine.record.link == "/ipfs/bafyresult"
    assert [entry.change for entry in machine.record.story][-1] == "uploading -> done"


def test_a_worker_without_the_stake_fails_and_says_how_much_to_deposit() -> None:
    machine = machine_in("pulled")
    instructions = machine.handle(checked(free=STAKE - 30))
    assert machine.state == "failed"
    assert machine.record.cause is WorkerCause.STAKE_TOO_LOW
    assert "deposit at least 30 more" in machine.record.message
    assert instructions == [
        ReportFailure(TASKID, WorkerCause.STAKE_TOO_LOW, machine.record.message),
        CleanUp(TASKID),
    ]


def test_a_replicate_pulled_after_its_deadline_fails_without_running() -> None:
    machine = machine_in("pulled")
    late = checked()
    machine.handle(dataclasses.replace(late, chain_now=late.contribution_deadline))
    assert (machine.state, machine.record.cause) == ("failed", WorkerCause.DEADLINE_PASSED)


def test_a_task_past_its_votes_needs_the_replicate_no_more() -> None:
    machine = machine_in("pulled")
    assert machine.handle(checked(status=TASK_REVEALING)) == [CleanUp(TASKID)]
    assert machine.state == "dropped"
    assert machine.record.cause is None


def test_a_checksum_mismatch_ends_the_replicate_with_its_cause() -> None:
    machine = machine_in("downloading")
    failure = FetchFailed(2.0, FailureCause.CHECKSUM_MISMATCH, "the module has sha256 0x12...")
    assert machine.handle(failure) == [
        ReportFailure(TASKID, FailureCause.CHECKSUM_MISMATCH, "the module has sha256 0x12..."),
        CleanUp(TASKID),
    ]
    assert machine.state == "failed"
    machine.validate()


def test_a_vote_that_lost_or_a_task_that_ended_is_given_up() -> None:
    for event, why in [
        (seen(ours=False), "another result won"),
        (seen(status=TASK_COMPLETED, ours=False), "the task ended"),
        (seen(status=TASK_ACTIVE, chain_now=10**9), "final deadline passed"),
        (seen(chain_now=10**9), "reveal deadline passed"),
    ]:
        machine = machine_in("contributed")
        assert machine.handle(event) == [CleanUp(TASKID)]
        assert machine.state == "dropped"
        assert why in machine.record.message


def test_a_vote_keeps_watching_until_the_consensus() -> None:
    machine = machine_in("contributed")
    assert machine.handle(seen(status=TASK_ACTIVE, ours=False)) == [
        WatchTask(TASKID, DIGEST, wait=True)
    ]
    assert machine.state == "contributed"


def test_a_withdrawal_stops_a_replicate_only_before_its_vote() -> None:
    running = machine_in("running")
    assert running.handle(Withdrawn(3.0, "lost")) == [CleanUp(TASKID)]
    assert running.state == "dropped"
    # The run that was in flight answers late; its answer is ignored.
    assert running.handle(Computed(4.0, DIGEST, b"")) == []
    assert running.state == "dropped"

    voted = machine_in("contributed")
    assert voted.handle(Withdrawn(5.0, "not listed")) == []
    assert voted.state == "contributed"


def test_a_failed_upload_still_ends_the_revealed_replicate() -> None:
    machine = machine_in("uploading")
    assert machine.handle(UploadFailed(8.0, "store unreachable")) == [CleanUp(TASKID)]
    assert (machine.state, machine.record.message) == ("done", "store unreachable")


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("pulled", Revealed(1.0, None)),
        ("downloading", Computed(1.0, DIGEST, b"")),
        ("contributing", Computed(1.0, DIGEST, b"")),
        ("contributed", Contributed(1.0, None)),
        ("done", Fetched(1.0, "app", None, ())),
        ("failed", ContributionFailed(1.0, WorkerCause.CONTRIBUTION_FAILED, "refused")),
    ],
)
def test_an_impossible_event_raises_with_the_replicates_story(
    state: ReplicateState, event: Event
) -> None:
    machine = _ended_as_failed() if state == "failed" else machine_in(state)
    with pytest.raises(InvalidTransition) as raised:
        machine.handle(event)
    assert raised.value.source == state
    assert "pulled" in str(raised.value)  # the story starts at the pull
    assert machine.state == state


def _ended_as_failed() -> ReplicateMachine:
    machine = machine_in("running")
    machine.handle(RunFailed(3.0, FailureCause.APP_EXITED, "the app exited with code 1"))
    return machine


def test_validate_names_every_broken_invariant() -> None:
    machine = machine_in("contributed")
    machine.record.digest = None
    machine.record.link = "/ipfs/x"
    with pytest.raises(InvariantViolation, match=r"without a digest.*a result link"):
        machine.validate()


RESUMED = {
    "pulled": [CheckChain(TASKID)],
    "downloading": [Fetch(TASKID)],
    "running": [Run(TASKID, "/cache/app.wasm", None, ())],
    "contributing": [Contribute(TASKID, DIGEST)],
    "contributed": [WatchTask(TASKID, DIGEST, wait=False)],
    "revealing": [Reveal(TASKID, DIGEST)],
    "uploading": [Upload(TASKID, b"")],
    "done": [CleanUp(TASKID)],
}


@pytest.mark.parametrize("state", sorted(RESUMED))
def test_a_restarted_worker_resumes_each_persisted_state_with_the_step_in_flight(
    state: ReplicateState, tmp_path: Path
) -> None:
    journal = Journal(tmp_path)
    journal.save(machine_in(state).record)

    (record,) = Journal(tmp_path).active()  # a new process reads it back
    resumed = ReplicateMachine(record)
    resumed.validate()
    assert resumed.state == state
    assert resumed.resume() == RESUMED[state]


def test_a_resumed_vote_is_never_sent_twice_and_is_revealed() -> None:
    """After a restart in `contributing` the shell finds the vote on-chain (no tx hash)."""
    machine = machine_in("contributing")
    assert machine.handle(Contributed(5.0, None)) == [WatchTask(TASKID, DIGEST, wait=False)]
    assert machine.handle(seen()) == [Reveal(TASKID, DIGEST)]


def test_a_failed_replicate_reports_again_when_resumed(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.save(_ended_as_failed().record)
    (record,) = journal.active()
    assert ReplicateMachine(record).resume() == [
        ReportFailure(TASKID, FailureCause.APP_EXITED, "the app exited with code 1"),
        CleanUp(TASKID),
    ]
