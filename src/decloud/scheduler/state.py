"""The scheduler's decisions, as declared state machines without I/O (STYLE.md section 2).

A `SchedulerState` holds tasks (each with its replicates) and workers. It receives events
(frozen dataclasses: facts from the chain, reports of workers, the passing of time) through
`handle`, changes itself, and returns instructions (frozen dataclasses) for the I/O shell to
carry out: sign an authorization, send a finalize, a reopen or a claim. It never reads a
clock, a database or the chain: time arrives inside the events (`now`, wall-clock seconds;
`chain_now`, the chain's block time, which every deadline is measured in), so a test plays
any scenario in microseconds.

Each task and each replicate moves only along the edges of one table (`TASK_TRANSITIONS`,
`REPLICATE_TRANSITIONS`); any other move raises `InvalidTransition`, which carries the task's
story: every event it saw and what each one changed. `validate_state` checks the invariants
that must hold between events.

The shell (`decloud.scheduler.store`) loads the part of the state an event concerns from SQL,
with row locks, hands it the event, and writes the changes and the story back in the same
transaction; `Worker.active_elsewhere` tells the machine about replicates of tasks it did
not load.

Task states

| state      | meaning                                                                     |
|------------|-----------------------------------------------------------------------------|
| pending    | known from its deal, no replicate handed out yet                            |
| active     | replicates are out; contributions are open on-chain                         |
| revealing  | a result reached consensus on-chain; its voters must reveal                 |
| finalizing | the scheduler sent (or will retry) finalize                                 |
| reopening  | nobody revealed in time: the scheduler sent (or will retry) reopen          |
| claimable  | the final deadline passed before completion: the scheduler claims it        |
| completed  | finalized on-chain (final)                                                  |
| failed     | claimed on-chain: the requester was refunded; `reason` says why (final)     |

Replicate states

| state       | meaning                                                                    |
|-------------|----------------------------------------------------------------------------|
| assigned    | handed to a worker with its authorization                                  |
| running     | the worker said it started                                                 |
| contributed | its vote is on-chain                                                       |
| revealed    | its reveal is on-chain (a winner)                                          |
| failed      | the worker gave up, with a typed cause (final, unless it votes after all)  |
| lost        | its worker missed pings, or it stalled; replaced (final, unless it votes)  |
| rejected    | its vote lost, or its worker did not reveal (final)                        |
| cancelled   | no longer needed: consensus was reached or the task ended (final, unless   |
|             | it votes after a reopen)                                                   |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal, get_args

from decloud.protocol.hub import (
    CONTRIBUTION_DEADLINE_RATIO,
    FINAL_DEADLINE_RATIO,
    MAX_CONTRIBUTORS,
    REVEAL_DEADLINE_RATIO,
)
from decloud.protocol.ids import task_id
from decloud.runtime.spec import FailureCause
from decloud.scheduler.policy import (
    Policy,
    Standing,
    replicates_needed,
    serves,
    worker_weight,
)

# ------------------------------------------------------------------------------ states

TaskState = Literal[
    "pending", "active", "revealing", "finalizing", "reopening", "claimable", "completed", "failed"
]
TASK_STATES: frozenset[TaskState] = frozenset(get_args(TaskState))
ASSIGNABLE: frozenset[TaskState] = frozenset({"pending", "active"})
"""Tasks that may get new replicates."""
ACTING: frozenset[TaskState] = frozenset({"finalizing", "reopening", "claimable"})
"""Tasks waiting for a transaction of the scheduler."""
TASK_DONE: frozenset[TaskState] = frozenset({"completed", "failed"})
WITH_CONSENSUS: frozenset[TaskState] = frozenset({"revealing", "finalizing", "reopening"})

TASK_TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    "pending": frozenset({"active", "claimable", "failed"}),
    # completed: a trust-1 worker may contributeAndFinalize in one transaction.
    "active": frozenset({"revealing", "completed", "claimable", "failed"}),
    # active: a reopen reported as failed (not mined in time) may be mined after all.
    "revealing": frozenset(
        {"finalizing", "reopening", "active", "completed", "claimable", "failed"}
    ),
    # revealing again: the transaction was refused; the next decision is made afresh.
    "finalizing": frozenset({"completed", "revealing", "claimable", "failed"}),
    "reopening": frozenset({"active", "revealing", "claimable", "failed"}),
    # completed: a finalize mined just before the deadline, seen late.
    "claimable": frozenset({"failed", "completed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}
"""Every allowed move of a task. Moves into `failed` and `completed` from many states are
chain facts (anyone may claim after the final deadline) that the scheduler must accept."""

ReplicateState = Literal[
    "assigned", "running", "contributed", "revealed", "failed", "lost", "rejected", "cancelled"
]
REPLICATE_STATES: frozenset[ReplicateState] = frozenset(get_args(ReplicateState))
PENDING: frozenset[ReplicateState] = frozenset({"assigned", "running"})
"""Handed out, not voted yet: counted optimistically, and what a worker is busy with."""
VOTED: frozenset[ReplicateState] = frozenset({"contributed", "revealed"})

REPLICATE_TRANSITIONS: Mapping[ReplicateState, frozenset[ReplicateState]] = {
    # A replicate is born assigned, or contributed when the chain shows the vote of a worker
    # the state does not know (adopted).
    # contributed straight away: the chain may show the vote before the worker's report.
    "assigned": frozenset({"running", "contributed", "failed", "lost", "cancelled"}),
    "running": frozenset({"contributed", "failed", "lost", "cancelled"}),
    "contributed": frozenset({"revealed", "rejected"}),
    "revealed": frozenset(),
    # A worker written off may still vote: the chain is the truth, and its vote counts. One
    # cancelled at consensus keeps its authorization, so it may vote after a reopen.
    "failed": frozenset({"contributed"}),
    "lost": frozenset({"contributed"}),
    "cancelled": frozenset({"contributed"}),
    "rejected": frozenset(),
}


class SchedulerCause(StrEnum):
    """Why the scheduler ended a replicate (the worker's own causes are `WorkerCause` and
    the runtime's `FailureCause`)."""

    MISSED_PINGS = "missed-pings"
    STALLED = "stalled"
    WRONG_RESULT = "wrong-result"
    NOT_REVEALED = "not-revealed"
    NOT_NEEDED = "not-needed"

    @property
    def advice(self) -> str:
        return _SCHEDULER_ADVICE[self]


class WorkerCause(StrEnum):
    """Failures a worker reports that happen outside the app's run."""

    DOWNLOAD_FAILED = "download-failed"
    STAKE_TOO_LOW = "stake-too-low"
    DEADLINE_PASSED = "deadline-passed"
    CONTRIBUTION_FAILED = "contribution-failed"
    WORKER_ERROR = "worker-error"

    @property
    def advice(self) -> str:
        return _WORKER_ADVICE[self]


Cause = FailureCause | WorkerCause | SchedulerCause
"""Every typed reason a replicate can end without a result."""

_SCHEDULER_ADVICE = {
    SchedulerCause.MISSED_PINGS: "The worker stopped answering; another worker took over.",
    SchedulerCause.STALLED: "The worker made no progress in time; another worker took over.",
    SchedulerCause.WRONG_RESULT: (
        "Its result differs from the consensus: the worker loses its stake. Check the app "
        "is deterministic if honest workers disagree."
    ),
    SchedulerCause.NOT_REVEALED: "The worker did not reveal its vote in time and loses its stake.",
    SchedulerCause.NOT_NEEDED: "Consensus was reached or the task ended without this replicate.",
}
_WORKER_ADVICE = {
    WorkerCause.DOWNLOAD_FAILED: (
        "The worker could not download the app or dataset: check its multiaddr is reachable."
    ),
    WorkerCause.STAKE_TOO_LOW: "The worker must deposit more to stake on this task.",
    WorkerCause.DEADLINE_PASSED: "The contribution deadline passed before the worker finished.",
    WorkerCause.CONTRIBUTION_FAILED: "The chain refused the worker's contribution or reveal.",
    WorkerCause.WORKER_ERROR: "The worker itself failed; its log says more.",
}


def parse_cause(value: str) -> Cause:
    """The typed cause named `value` (any of the three kinds)."""
    for kind in (FailureCause, WorkerCause, SchedulerCause):
        try:
            return kind(value)
        except ValueError:
            continue
    raise ValueError(f"unknown replicate cause {value!r}")


# ---------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class Requirements:
    """What a worker must offer to run a deal's tasks."""

    runtime: str
    """The app's type: "WASM" or "OCI"."""
    tee: bool = False
    gpu: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What a worker declared it offers."""

    cores: int
    memory_mb: int
    runtimes: frozenset[str]
    gpu: bool = False
    tee: bool = False
    slots: int = 1
    """Replicates it runs at once."""

    def can_run(self, requirements: Requirements) -> bool:
        return (
            requirements.runtime in self.runtimes
            and (self.tee or not requirements.tee)
            and (self.gpu or not requirements.gpu)
        )


@dataclass(frozen=True)
class Terms:
    """What the machine needs to know of a deal."""

    dealid: bytes
    trust: int
    time_ref: int
    start_time: int
    requirements: Requirements

    @property
    def contribution_deadline(self) -> int:
        return self.start_time + CONTRIBUTION_DEADLINE_RATIO * self.time_ref

    @property
    def final_deadline(self) -> int:
        return self.start_time + FINAL_DEADLINE_RATIO * self.time_ref


@dataclass
class Worker:
    """A worker of the pool, as far as handing out work is concerned."""

    address: str
    score: int = 0
    capabilities: Capabilities | None = None
    last_ping: float = 0.0
    last_pull: float | None = None
    last_assigned: float | None = None
    lost: bool = False
    active_elsewhere: int = 0
    """Pending replicates it holds in tasks outside this state (the shell counts them)."""
    successes: int = 0
    failures: int = 0


@dataclass
class Replicate:
    """One worker's execution of one task."""

    worker: str
    state: ReplicateState
    assigned_at: float
    progress_at: float
    """Last sign of progress: assignment, a report, a vote."""
    weight: int
    """The weight its vote has (on-chain, once contributed) or is expected to have."""
    result_hash: bytes | None = None
    digest: bytes | None = None
    cause: Cause | None = None
    message: str = ""
    results: str | None = None
    """The result link this worker reported."""


@dataclass(frozen=True)
class StoryEntry:
    """One event in the life of a task, and what it changed."""

    at: float
    event: str
    changes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.at:.3f} {self.event}: {'; '.join(self.changes) or 'no change'}"


@dataclass
class Task:
    """One task of a deal, and its replicates by worker."""

    taskid: bytes
    index: int
    terms: Terms
    state: TaskState = "pending"
    replicates: dict[str, Replicate] = field(default_factory=dict)
    contribution_deadline: int = 0
    consensus: bytes | None = None
    reveal_deadline: int | None = None
    all_revealed_at: float | None = None
    results: str | None = None
    callback_data: bytes = b""
    reason: str = ""
    """Why the task waits, gave up, or failed, for the requester."""
    retry_at: float | None = None
    """When a refused transaction may be tried again."""
    story: list[StoryEntry] = field(default_factory=list)

    def in_state(self, states: frozenset[ReplicateState]) -> list[Replicate]:
        return [r for r in self.replicates.values() if r.state in states]

    @property
    def voters(self) -> list[Replicate]:
        """Every replicate whose vote is on-chain, whatever became of it: the hub's list
        of contributors."""
        return [r for r in self.replicates.values() if r.result_hash is not None]

    @property
    def winners(self) -> list[Replicate]:
        return [r for r in self.in_state(VOTED) if r.result_hash == self.consensus]

    def groups(self) -> dict[bytes, list[int]]:
        """Result hash -> weights of its votes, as the hub counts them: a reopen discards the
        consensus group (its voters are rejected as not revealed), wrong votes stay."""
        groups: dict[bytes, list[int]] = {}
        for replicate in self.replicates.values():
            discarded = replicate.cause is SchedulerCause.NOT_REVEALED
            if replicate.result_hash is not None and not discarded:
                groups.setdefault(replicate.result_hash, []).append(replicate.weight)
        return groups


# ------------------------------------------------------------------------------ events


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened, seen by the shell at wall-clock time `now`."""

    now: float


@dataclass(frozen=True, kw_only=True)
class DealMatched(Event):
    """A deal for this workerpool: its tasks `first_index`.. are to be run."""

    terms: Terms
    first_index: int
    size: int


@dataclass(frozen=True, kw_only=True)
class ReplicateContributed(Event):
    """The chain recorded `worker`'s vote on the task."""

    taskid: bytes
    worker: str
    result_hash: bytes
    weight: int


@dataclass(frozen=True, kw_only=True)
class ConsensusReached(Event):
    """A result won on-chain at block time `chain_now`."""

    taskid: bytes
    consensus: bytes
    chain_now: int


@dataclass(frozen=True, kw_only=True)
class ReplicateRevealed(Event):
    taskid: bytes
    worker: str
    digest: bytes


@dataclass(frozen=True, kw_only=True)
class TaskReopened(Event):
    taskid: bytes
    contribution_deadline: int


@dataclass(frozen=True, kw_only=True)
class TaskFinalized(Event):
    taskid: bytes
    results: str


@dataclass(frozen=True, kw_only=True)
class TaskClaimed(Event):
    taskid: bytes


@dataclass(frozen=True, kw_only=True)
class ScoreChanged(Event):
    """A finalization changed a worker's reputation."""

    worker: str
    score: int


@dataclass(frozen=True, kw_only=True)
class WorkerLoggedIn(Event):
    worker: str
    score: int


@dataclass(frozen=True, kw_only=True)
class CapabilitiesRegistered(Event):
    worker: str
    capabilities: Capabilities


@dataclass(frozen=True, kw_only=True)
class WorkerPing(Event):
    worker: str


@dataclass(frozen=True, kw_only=True)
class WorkPulled(Event):
    """A worker asks for a replicate; `chain_now` is the shell's estimate of block time."""

    worker: str
    chain_now: int


@dataclass(frozen=True, kw_only=True)
class ReplicateStarted(Event):
    taskid: bytes
    worker: str


@dataclass(frozen=True, kw_only=True)
class ReplicateReported(Event):
    """The worker says it sent its contribution or reveal; the chain will confirm."""

    taskid: bytes
    worker: str
    step: Literal["contributed", "revealed"]
    tx_hash: str


@dataclass(frozen=True, kw_only=True)
class ReplicateFailed(Event):
    taskid: bytes
    worker: str
    cause: FailureCause | WorkerCause
    message: str


@dataclass(frozen=True, kw_only=True)
class ResultUploaded(Event):
    """A winner stored the result archive; `link` goes on-chain with finalize."""

    taskid: bytes
    worker: str
    link: str
    callback_data: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Tick(Event):
    """Time passes: deadlines, stalls, lost workers and retries are looked at."""

    chain_now: int


@dataclass(frozen=True, kw_only=True)
class WorkerLost(Event):
    worker: str


@dataclass(frozen=True, kw_only=True)
class ReplicateStalled(Event):
    taskid: bytes
    worker: str


@dataclass(frozen=True, kw_only=True)
class ContributionDeadlinePassed(Event):
    taskid: bytes


@dataclass(frozen=True, kw_only=True)
class RevealDeadlinePassed(Event):
    taskid: bytes
    chain_now: int


@dataclass(frozen=True, kw_only=True)
class FinalDeadlineNear(Event):
    """Every winner revealed and the final deadline is near: no more waiting for the link."""

    taskid: bytes
    chain_now: int


@dataclass(frozen=True, kw_only=True)
class FinalDeadlinePassed(Event):
    taskid: bytes


@dataclass(frozen=True, kw_only=True)
class ActionFailed(Event):
    """A finalize, reopen or claim transaction was refused or could not be sent."""

    taskid: bytes
    action: Literal["finalize", "reopen", "claim"]
    reason: str


# ------------------------------------------------------------------------ instructions


@dataclass(frozen=True)
class Instruction:
    """Something for the shell to do."""

    taskid: bytes


@dataclass(frozen=True)
class Assign(Instruction):
    """Answer the worker's pull with this task."""

    worker: str


@dataclass(frozen=True)
class SignAuthorization(Instruction):
    """Sign WorkerpoolAuthorization(worker, taskid, 0) with the workerpool owner's key and
    keep it with the replicate."""

    worker: str


@dataclass(frozen=True)
class Finalize(Instruction):
    """Send finalize; the shell sorts `contributors` as the hub wants them."""

    contributors: tuple[str, ...]
    results: str
    callback_data: bytes


@dataclass(frozen=True)
class Reopen(Instruction):
    consensus: bytes
    supporters: tuple[str, ...]


@dataclass(frozen=True)
class Claim(Instruction):
    contributors: tuple[str, ...]


# ------------------------------------------------------------------------------ errors


class InvalidTransition(Exception):
    """A move the transition tables forbid; carries the task's story."""

    def __init__(
        self, what: str, source: str, target: str, event: Event, story: list[StoryEntry]
    ) -> None:
        self.what = what
        self.source = source
        self.target = target
        self.event = event
        self.story = list(story)
        lines = "\n".join(f"  {entry}" for entry in self.story) or "  (no story)"
        super().__init__(
            f"{what}: {source} -> {target} is not allowed (on {describe(event)}); story:\n{lines}"
        )


class InvariantViolation(AssertionError):
    """`validate_state` found the state inconsistent; lists every broken invariant."""


class UnknownSubject(KeyError):
    """An event names a task, replicate or worker this state does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


def describe(event: Event) -> str:
    """A short, readable form of an event for stories and logs."""
    parts = []
    for item in fields(event):
        if item.name != "now":
            parts.append(f"{item.name}={_short(getattr(event, item.name))}")
    return f"{type(event).__name__}({', '.join(parts)})"


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()[:12] if value else "0x"
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value[:8]
    if isinstance(value, Terms):
        return f"deal 0x{value.dealid.hex()[:12]} trust {value.trust}"
    if isinstance(value, Capabilities):
        return f"{'+'.join(sorted(value.runtimes))} x{value.slots}"
    return str(value)


def short_id(taskid: bytes) -> str:
    return "0x" + taskid.hex()[:12]


# ------------------------------------------------------------------------------- state


@dataclass
class _Frame:
    """What one event changed, while it is handled."""

    event: Event
    changes: dict[bytes | None, list[str]] = field(default_factory=dict)


class SchedulerState:
    """Tasks, replicates and workers, changed only by `handle(event)`."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.tasks: dict[bytes, Task] = {}
        self.workers: dict[str, Worker] = {}
        self.touched_tasks: set[bytes] = set()
        self.touched_workers: set[str] = set()
        self.history: list[tuple[Event, bytes | None, tuple[str, ...]]] = []
        """(event, task or None, changes) of every event that changed something: the shell
        persists it with the changes themselves."""
        self._frames: list[_Frame] = []
        self._handlers: dict[type[Event], Callable[[Any], list[Instruction]]] = {
            DealMatched: self._on_deal_matched,
            ReplicateContributed: self._on_replicate_contributed,
            ConsensusReached: self._on_consensus_reached,
            ReplicateRevealed: self._on_replicate_revealed,
            TaskReopened: self._on_task_reopened,
            TaskFinalized: self._on_task_finalized,
            TaskClaimed: self._on_task_claimed,
            ScoreChanged: self._on_score_changed,
            WorkerLoggedIn: self._on_worker_logged_in,
            CapabilitiesRegistered: self._on_capabilities_registered,
            WorkerPing: self._on_worker_ping,
            WorkPulled: self._on_work_pulled,
            ReplicateStarted: self._on_replicate_started,
            ReplicateReported: self._on_replicate_reported,
            ReplicateFailed: self._on_replicate_failed,
            ResultUploaded: self._on_result_uploaded,
            Tick: self._on_tick,
            WorkerLost: self._on_worker_lost,
            ReplicateStalled: self._on_replicate_stalled,
            ContributionDeadlinePassed: self._on_contribution_deadline_passed,
            RevealDeadlinePassed: self._on_reveal_deadline_passed,
            FinalDeadlineNear: self._on_final_deadline_near,
            FinalDeadlinePassed: self._on_final_deadline_passed,
            ActionFailed: self._on_action_failed,
        }

    # --- the one entry point --------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; the instructions it calls for, in order."""
        self._frames.append(_Frame(event))
        try:
            instructions = self._handlers[type(event)](event)
        finally:
            frame = self._frames.pop()
        self._record(frame)
        return instructions

    def _record(self, frame: _Frame) -> None:
        """Keep what an event changed; events that changed nothing (most pings, pulls
        that found no work, quiet ticks) leave no trace."""
        for taskid, changes in frame.changes.items():
            self.history.append((frame.event, taskid, tuple(changes)))
            if taskid is not None and taskid in self.tasks:
                entry = StoryEntry(frame.event.now, describe(frame.event), tuple(changes))
                self.tasks[taskid].story.append(entry)

    def _note(self, task: Task | None, change: str) -> None:
        key = task.taskid if task is not None else None
        self._frames[-1].changes.setdefault(key, []).append(change)
        if task is not None:
            self.touched_tasks.add(task.taskid)

    def _move_task(self, task: Task, target: TaskState) -> None:
        if target == task.state:
            return
        if target not in TASK_TRANSITIONS[task.state]:
            raise InvalidTransition(
                f"task {short_id(task.taskid)}",
                task.state,
                target,
                self._frames[-1].event,
                task.story,
            )
        self._note(task, f"task {task.state} -> {target}")
        task.state = target

    def _move_replicate(
        self,
        task: Task,
        replicate: Replicate,
        target: ReplicateState,
        cause: Cause | None = None,
        message: str = "",
    ) -> None:
        if target == replicate.state:
            return
        if target not in REPLICATE_TRANSITIONS[replicate.state]:
            raise InvalidTransition(
                f"replicate of {replicate.worker} on task {short_id(task.taskid)}",
                replicate.state,
                target,
                self._frames[-1].event,
                task.story,
            )
        self._note(task, f"replicate {replicate.worker[:8]} {replicate.state} -> {target}")
        replicate.state = target
        if cause is not None:
            replicate.cause = cause
            replicate.message = message or cause.advice
        elif target in VOTED:
            replicate.cause, replicate.message = None, ""  # a vote outweighs a write-off

    def _touch_worker(self, worker: Worker) -> None:
        self.touched_workers.add(worker.address)

    # --- lookups ----------------------------------------------------------------------

    def task(self, taskid: bytes) -> Task:
        try:
            return self.tasks[taskid]
        except KeyError:
            raise UnknownSubject(f"no task {short_id(taskid)}") from None

    def worker(self, address: str) -> Worker:
        try:
            return self.workers[address]
        except KeyError:
            raise UnknownSubject(f"no worker {address}") from None

    def replicate(self, taskid: bytes, worker: str) -> tuple[Task, Replicate]:
        task = self.task(taskid)
        try:
            return task, task.replicates[worker]
        except KeyError:
            raise UnknownSubject(
                f"worker {worker} holds no replicate of task {short_id(taskid)}"
            ) from None

    def active(self, worker: Worker) -> int:
        """Its replicates not finished yet, in this state and elsewhere."""
        here = sum(
            1
            for task in self.tasks.values()
            for replicate in task.in_state(PENDING)
            if replicate.worker == worker.address
        )
        return here + worker.active_elsewhere

    def needed(self, task: Task, newcomer: int) -> int:
        """More replicates the task needs, each assumed to weigh `newcomer`."""
        if task.state not in ASSIGNABLE:
            return 0
        failed = len([r for r in task.replicates.values() if r.state == "failed"])
        if failed >= self.policy.max_failed_replicates:
            return 0
        return replicates_needed(
            task.terms.trust,
            task.groups(),
            [r.weight for r in task.in_state(PENDING)],
            newcomer,
            len(task.voters),
        )

    # --- chain facts ----------------------------------------------------------------------

    def _on_deal_matched(self, event: DealMatched) -> list[Instruction]:
        terms = event.terms
        for index in range(event.first_index, event.first_index + event.size):
            taskid = task_id(terms.dealid, index)
            if taskid in self.tasks:
                continue  # the chain delivers events at least once
            task = Task(taskid, index, terms, contribution_deadline=terms.contribution_deadline)
            self.tasks[taskid] = task
            self._note(task, "task created pending")
        return []

    def _on_replicate_contributed(self, event: ReplicateContributed) -> list[Instruction]:
        task = self.task(event.taskid)
        replicate = task.replicates.get(event.worker)
        if replicate is None:
            replicate = Replicate(event.worker, "contributed", event.now, event.now, event.weight)
            task.replicates[event.worker] = replicate
            self._note(task, f"replicate {event.worker[:8]} adopted from the chain")
            if task.state == "pending":
                self._move_task(task, "active")
        elif replicate.result_hash is not None:
            return []  # seen before
        self._move_replicate(task, replicate, "contributed")
        replicate.result_hash = event.result_hash
        replicate.weight = event.weight
        replicate.progress_at = event.now
        return []

    def _on_consensus_reached(self, event: ConsensusReached) -> list[Instruction]:
        task = self.task(event.taskid)
        if task.consensus == event.consensus and task.state in WITH_CONSENSUS:
            return []
        self._move_task(task, "revealing")
        task.consensus = event.consensus
        task.reveal_deadline = event.chain_now + REVEAL_DEADLINE_RATIO * task.terms.time_ref
        task.reason = ""
        for replicate in task.in_state(frozenset({"contributed"})):
            if replicate.result_hash != event.consensus:
                self._move_replicate(task, replicate, "rejected", SchedulerCause.WRONG_RESULT)
        self._cancel_pending(task)
        return []

    def _on_replicate_revealed(self, event: ReplicateRevealed) -> list[Instruction]:
        task, replicate = self.replicate(event.taskid, event.worker)
        if replicate.state == "revealed":
            return []
        self._move_replicate(task, replicate, "revealed")
        replicate.digest = event.digest
        replicate.progress_at = event.now
        # Without a consensus this is a trust-1 contributeAndFinalize: TaskFinalized follows.
        if task.consensus is not None and all(r.state == "revealed" for r in task.winners):
            task.all_revealed_at = event.now
        return self._advance(task, event.now, None)

    def _on_task_reopened(self, event: TaskReopened) -> list[Instruction]:
        task = self.task(event.taskid)
        if task.state in ASSIGNABLE:
            return []
        self._move_task(task, "active")
        for replicate in task.winners:
            self._move_replicate(task, replicate, "rejected", SchedulerCause.NOT_REVEALED)
        task.consensus = None
        task.reveal_deadline = None
        task.all_revealed_at = None
        task.retry_at = None
        task.contribution_deadline = event.contribution_deadline
        return []

    def _on_task_finalized(self, event: TaskFinalized) -> list[Instruction]:
        task = self.task(event.taskid)
        if task.state == "completed":
            return []
        self._move_task(task, "completed")
        task.results = event.results
        task.reason = ""
        self._end_replicates(task)
        return []

    def _on_task_claimed(self, event: TaskClaimed) -> list[Instruction]:
        task = self.task(event.taskid)
        if task.state == "failed":
            return []
        self._move_task(task, "failed")
        why = task.reason or "no result reached consensus"
        task.reason = f"claimed after the final deadline, requester refunded: {why}"
        self._end_replicates(task)
        return []

    def _end_replicates(self, task: Task) -> None:
        """A task that ended: pending replicates are not needed, silent winners lost. Without
        a consensus nobody was wrong (a claim returns their stakes): votes stay as they are."""
        self._cancel_pending(task)
        if task.consensus is None:
            return
        for replicate in task.in_state(frozenset({"contributed"})):
            cause = (
                SchedulerCause.NOT_REVEALED
                if replicate.result_hash == task.consensus
                else SchedulerCause.WRONG_RESULT
            )
            self._move_replicate(task, replicate, "rejected", cause)

    def _cancel_pending(self, task: Task) -> None:
        for replicate in task.in_state(PENDING):
            self._move_replicate(task, replicate, "cancelled", SchedulerCause.NOT_NEEDED)

    def _on_score_changed(self, event: ScoreChanged) -> list[Instruction]:
        worker = self.workers.get(event.worker)
        if worker is not None and worker.score != event.score:
            worker.score = event.score
            self._touch_worker(worker)
            self._note(None, f"worker {event.worker[:8]} score {event.score}")
        return []

    # --- workers ----------------------------------------------------------------------

    def _on_worker_logged_in(self, event: WorkerLoggedIn) -> list[Instruction]:
        worker = self.workers.setdefault(event.worker, Worker(event.worker))
        worker.score = event.score
        self._alive(worker, event.now)
        self._note(None, f"worker {event.worker[:8]} logged in, score {event.score}")
        return []

    def _on_capabilities_registered(self, event: CapabilitiesRegistered) -> list[Instruction]:
        worker = self.worker(event.worker)
        worker.capabilities = event.capabilities
        self._alive(worker, event.now)
        return []

    def _on_worker_ping(self, event: WorkerPing) -> list[Instruction]:
        self._alive(self.worker(event.worker), event.now)
        return []

    def _alive(self, worker: Worker, now: float) -> None:
        worker.last_ping = max(worker.last_ping, now)
        if worker.lost:
            worker.lost = False
            self._note(None, f"worker {worker.address[:8]} is back")
        self._touch_worker(worker)

    def _on_work_pulled(self, event: WorkPulled) -> list[Instruction]:
        worker = self.worker(event.worker)
        self._alive(worker, event.now)
        worker.last_pull = event.now
        capabilities = worker.capabilities
        if capabilities is None or self.active(worker) >= capabilities.slots:
            return []
        weight = worker_weight(worker.score)
        needy = [
            (task, need)
            for task in self._assignable_for(worker, event.chain_now)
            if (need := self.needed(task, weight)) > 0
        ]
        demand = sum(need for _, need in needy)
        if not needy or not serves(worker.address, self._ready(event.now, needy), demand):
            return []
        return self._assign(needy[0][0], worker, event.now)

    def _assignable_for(self, worker: Worker, chain_now: int) -> list[Task]:
        """Tasks this worker may take now, most advanced first (a task that already has
        replicates out completes sooner with one more), then in deal and index order."""
        capabilities = worker.capabilities
        cutoff = chain_now + self.policy.assign_cutoff_s
        tasks = [
            task
            for task in self.tasks.values()
            if task.state in ASSIGNABLE
            and worker.address not in task.replicates
            and capabilities is not None
            and capabilities.can_run(task.terms.requirements)
            and cutoff < task.contribution_deadline
        ]
        return sorted(
            tasks, key=lambda t: (t.state != "active", t.terms.start_time, t.terms.dealid, t.index)
        )

    def _ready(self, now: float, needy: list[tuple[Task, int]]) -> list[Standing]:
        """Workers that asked for work recently, have a free slot and could take one of the
        needy tasks."""
        window = now - self.policy.ready_window_s
        ready = []
        for worker in self.workers.values():
            capabilities = worker.capabilities
            if (
                capabilities is None
                or worker.lost
                or worker.last_pull is None
                or worker.last_pull < window
            ):
                continue
            active = self.active(worker)
            could_take = any(
                worker.address not in task.replicates
                and capabilities.can_run(task.terms.requirements)
                for task, _ in needy
            )
            if active < capabilities.slots and could_take:
                ready.append(
                    Standing(
                        worker.address,
                        active,
                        capabilities.slots,
                        worker.score,
                        worker.successes,
                        worker.failures,
                        worker.last_assigned,
                    )
                )
        return ready

    def _assign(self, task: Task, worker: Worker, now: float) -> list[Instruction]:
        replicate = Replicate(worker.address, "assigned", now, now, worker_weight(worker.score))
        task.replicates[worker.address] = replicate
        self._note(task, f"replicate {worker.address[:8]} assigned")
        if task.state == "pending":
            self._move_task(task, "active")
        worker.last_assigned = now
        self._touch_worker(worker)
        return [Assign(task.taskid, worker.address), SignAuthorization(task.taskid, worker.address)]

    # --- worker reports -----------------------------------------------------------------

    def _on_replicate_started(self, event: ReplicateStarted) -> list[Instruction]:
        task, replicate = self.replicate(event.taskid, event.worker)
        if replicate.state not in ("running", "contributed", "revealed"):
            self._move_replicate(task, replicate, "running")
        replicate.progress_at = event.now
        self._note(task, f"replicate {event.worker[:8]} progress")
        return []

    def _on_replicate_reported(self, event: ReplicateReported) -> list[Instruction]:
        task, replicate = self.replicate(event.taskid, event.worker)
        if replicate.state == "assigned":
            self._move_replicate(task, replicate, "running")
        elif replicate.state not in ("running", *VOTED):
            raise InvalidTransition(
                f"replicate of {event.worker} on task {short_id(task.taskid)}",
                replicate.state,
                event.step,
                event,
                task.story,
            )
        replicate.progress_at = event.now
        self._note(task, f"replicate {event.worker[:8]} reported {event.step}")
        return []

    def _on_replicate_failed(self, event: ReplicateFailed) -> list[Instruction]:
        task, replicate = self.replicate(event.taskid, event.worker)
        if replicate.state == "failed":
            return []
        self._move_replicate(task, replicate, "failed", event.cause, event.message)
        failed = [r for r in task.replicates.values() if r.state == "failed"]
        if len(failed) >= self.policy.max_failed_replicates and task.state in ASSIGNABLE:
            causes = ", ".join(sorted({str(r.cause) for r in failed}))
            task.reason = (
                f"gave up after {len(failed)} failed replicates ({causes}); the task will be "
                "claimed at its final deadline"
            )
            self._note(task, "no more replicates")
        return []

    def _on_result_uploaded(self, event: ResultUploaded) -> list[Instruction]:
        task, replicate = self.replicate(event.taskid, event.worker)
        if replicate.state != "revealed":
            raise InvalidTransition(
                f"result of {event.worker} on task {short_id(task.taskid)}",
                replicate.state,
                "uploaded",
                event,
                task.story,
            )
        replicate.results = event.link
        if task.results is None:
            task.results = event.link
            task.callback_data = event.callback_data
            self._note(task, f"results {event.link}")
        return self._advance(task, event.now, None)

    # --- time ---------------------------------------------------------------------------

    def _on_tick(self, event: Tick) -> list[Instruction]:
        instructions: list[Instruction] = []
        for worker in list(self.workers.values()):
            if not worker.lost and worker.last_ping < event.now - self.policy.lost_after_s:
                instructions += self.handle(WorkerLost(now=event.now, worker=worker.address))
        for task in list(self.tasks.values()):
            for due in self._due(task, event):
                instructions += self.handle(due)
            instructions += self._advance(task, event.now, event.chain_now)
        return instructions

    def _due(self, task: Task, tick: Tick) -> Iterator[Event]:
        """The time events that fell due for a task by this tick."""
        now, chain_now = tick.now, tick.chain_now
        if task.state in TASK_DONE:
            return
        if chain_now >= task.terms.final_deadline and task.state != "claimable":
            yield FinalDeadlinePassed(now=now, taskid=task.taskid)
            return
        closed = task.state in ASSIGNABLE and chain_now >= task.contribution_deadline
        if closed and (task.in_state(PENDING) or not task.reason):
            yield ContributionDeadlinePassed(now=now, taskid=task.taskid)
        for replicate in task.in_state(PENDING):
            if now >= self.stall_deadline(task, replicate):
                yield ReplicateStalled(now=now, taskid=task.taskid, worker=replicate.worker)
        deadline = task.reveal_deadline
        if task.state == "revealing" and deadline is not None and chain_now >= deadline:
            yield RevealDeadlinePassed(now=now, taskid=task.taskid, chain_now=chain_now)
        all_revealed = task.state == "revealing" and task.all_revealed_at is not None
        if all_revealed and chain_now >= self._hurry_from(task):
            yield FinalDeadlineNear(now=now, taskid=task.taskid, chain_now=chain_now)

    def _hurry_from(self, task: Task) -> int:
        """Block time from which a task whose winners all revealed is finalized at once."""
        return task.terms.final_deadline - self.policy.final_margin_s

    def wakeups(self, task: Task) -> tuple[float | None, int | None]:
        """When a Tick must next look at the task, as (wall-clock time, block time), None
        for never: the shell keeps both in SQL to find due tasks without reading them all."""
        if task.state in TASK_DONE:
            return None, None
        wall = [self.stall_deadline(task, r) for r in task.in_state(PENDING)]
        if task.retry_at is not None:
            wall.append(task.retry_at)
        if task.state == "revealing" and task.all_revealed_at is not None:
            wall.append(task.all_revealed_at + self.policy.upload_wait_s)
        chain = [] if task.state == "claimable" else [task.terms.final_deadline]
        if task.state == "revealing" and task.all_revealed_at is not None:
            chain.append(self._hurry_from(task))
        if task.state == "revealing" and task.reveal_deadline is not None and not task.reason:
            chain.append(task.reveal_deadline)
        if task.state in ASSIGNABLE and (task.in_state(PENDING) or not task.reason):
            chain.append(task.contribution_deadline)
        return min(wall, default=None), min(chain, default=None)

    def stall_deadline(self, task: Task, replicate: Replicate) -> float:
        """When a pending replicate counts as stalled if it made no progress."""
        if replicate.state == "assigned":
            return replicate.progress_at + self.policy.start_timeout_s
        return replicate.progress_at + self.policy.progress_timeout(task.terms.time_ref)

    def _on_worker_lost(self, event: WorkerLost) -> list[Instruction]:
        worker = self.worker(event.worker)
        worker.lost = True
        self._touch_worker(worker)
        self._note(None, f"worker {event.worker[:8]} lost")
        for task in self.tasks.values():
            replicate = task.replicates.get(event.worker)
            if replicate is not None and replicate.state in PENDING:
                self._move_replicate(task, replicate, "lost", SchedulerCause.MISSED_PINGS)
        return []

    def _on_replicate_stalled(self, event: ReplicateStalled) -> list[Instruction]:
        task, replicate = self.replicate(event.taskid, event.worker)
        self._move_replicate(task, replicate, "lost", SchedulerCause.STALLED)
        return []

    def _on_contribution_deadline_passed(
        self, event: ContributionDeadlinePassed
    ) -> list[Instruction]:
        task = self.task(event.taskid)
        self._cancel_pending(task)
        task.reason = "the contribution deadline passed before a result reached consensus"
        self._note(task, "contributions closed")
        return []

    def _on_reveal_deadline_passed(self, event: RevealDeadlinePassed) -> list[Instruction]:
        return self._advance(self.task(event.taskid), event.now, event.chain_now)

    def _on_final_deadline_near(self, event: FinalDeadlineNear) -> list[Instruction]:
        return self._advance(self.task(event.taskid), event.now, event.chain_now)

    def _on_final_deadline_passed(self, event: FinalDeadlinePassed) -> list[Instruction]:
        task = self.task(event.taskid)
        self._move_task(task, "claimable")
        self._cancel_pending(task)
        task.reason = task.reason or "the final deadline passed before the task completed"
        task.retry_at = None
        return self._advance(task, event.now, None)

    def _on_action_failed(self, event: ActionFailed) -> list[Instruction]:
        task = self.task(event.taskid)
        if task.state in ("finalizing", "reopening"):
            self._move_task(task, "revealing")
        task.retry_at = event.now + self.policy.action_retry_s
        self._note(task, f"{event.action} refused: {event.reason}")
        return []

    # --- decisions --------------------------------------------------------------------

    def _advance(self, task: Task, now: float, chain_now: int | None) -> list[Instruction]:
        """Decide what a task needs from the scheduler's key now, if anything."""
        if task.retry_at is not None and now < task.retry_at:
            return []
        match task.state:
            case "claimable":
                task.retry_at = now + self.policy.action_retry_s
                return [Claim(task.taskid, tuple(r.worker for r in task.voters))]
            case "finalizing":
                task.retry_at = now + self.policy.action_retry_s
                return [self._finalize(task)]
            case "reopening":
                task.retry_at = now + self.policy.action_retry_s
                return [self._reopen(task)]
            case "revealing":
                return self._decide(task, now, chain_now)
            case _:
                return []

    def _decide(self, task: Task, now: float, chain_now: int | None) -> list[Instruction]:
        """Finalize once every winner revealed and the result is stored (or the wait for it
        is over), or after the reveal deadline with any reveal; reopen after it without."""
        winners = task.winners
        revealed = [r for r in winners if r.state == "revealed"]
        past_reveal = (
            chain_now is not None
            and task.reveal_deadline is not None
            and chain_now >= task.reveal_deadline
        )
        upload_over = (
            task.all_revealed_at is not None
            and now >= task.all_revealed_at + self.policy.upload_wait_s
        ) or (chain_now is not None and chain_now >= self._hurry_from(task))
        if revealed and len(revealed) == len(winners):
            if task.results is not None or upload_over or past_reveal:
                return self._act(task, "finalizing", now)
        elif revealed and past_reveal:
            return self._act(task, "finalizing", now)
        elif past_reveal and chain_now is not None:
            if chain_now < task.terms.final_deadline - REVEAL_DEADLINE_RATIO * task.terms.time_ref:
                return self._act(task, "reopening", now)
            task.reason = "no winner revealed, and it is too late to reopen"
        return []

    def _act(self, task: Task, target: TaskState, now: float) -> list[Instruction]:
        self._move_task(task, target)
        task.retry_at = None
        return self._advance(task, now, None)

    def _finalize(self, task: Task) -> Finalize:
        return Finalize(
            task.taskid,
            tuple(r.worker for r in task.voters),
            task.results or "",
            task.callback_data,
        )

    def _reopen(self, task: Task) -> Reopen:
        assert task.consensus is not None, "a task reopens only with a consensus"
        return Reopen(task.taskid, task.consensus, tuple(r.worker for r in task.winners))

    # --- checks -----------------------------------------------------------------------

    def validate_state(self) -> None:
        """Raise InvariantViolation listing every invariant that does not hold."""
        problems = [problem for task in self.tasks.values() for problem in _task_problems(task)]
        problems += [
            f"worker {w.address}: negative active_elsewhere"
            for w in self.workers.values()
            if w.active_elsewhere < 0
        ]
        if problems:
            raise InvariantViolation("\n".join(problems))


def _task_problems(task: Task) -> Iterator[str]:
    name = f"task {short_id(task.taskid)} ({task.state})"
    if task.state not in TASK_STATES:
        yield f"{name}: unknown state"
    if task.state == "pending" and task.replicates:
        yield f"{name}: pending with replicates"
    if task.state not in ASSIGNABLE and task.in_state(PENDING):
        yield f"{name}: replicates pending while contributions are closed"
    if len(task.voters) > MAX_CONTRIBUTORS:
        yield f"{name}: more than {MAX_CONTRIBUTORS} contributions"
    if task.state in WITH_CONSENSUS and (task.consensus is None or task.reveal_deadline is None):
        yield f"{name}: no consensus or reveal deadline"
    if task.state in WITH_CONSENSUS and not task.winners:
        yield f"{name}: consensus without winners"
    if task.state in ASSIGNABLE and task.consensus is not None:
        yield f"{name}: consensus while contributions are open"
    if task.state in ACTING and task.retry_at is None:
        yield f"{name}: waiting for a transaction with no retry time"
    for key, replicate in task.replicates.items():
        yield from _replicate_problems(name, key, replicate, task)


def _replicate_problems(name: str, key: str, replicate: Replicate, task: Task) -> Iterator[str]:
    where = f"{name}, replicate {key}"
    if key != replicate.worker:
        yield f"{where}: filed under another worker"
    if replicate.state not in REPLICATE_STATES:
        yield f"{where}: unknown state {replicate.state}"
    if replicate.state in VOTED and replicate.result_hash is None:
        yield f"{where}: voted without a result hash"
    if replicate.state == "revealed" and (
        replicate.digest is None
        or (task.consensus is not None and replicate.result_hash != task.consensus)
    ):
        yield f"{where}: revealed without a digest, or not the consensus"
    if replicate.state in ("failed", "lost", "rejected", "cancelled") and replicate.cause is None:
        yield f"{where}: ended without a cause"
