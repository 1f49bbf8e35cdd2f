"""A worker's replicate, as a declared state machine without I/O (STYLE.md section 2).

`ReplicateMachine` holds one replicate's `ReplicateRecord`. It receives events (frozen
dataclasses: what the chain showed, what a download, a run or a transaction gave) through
`handle`, changes the record and returns instructions (frozen dataclasses) for the I/O shell
(`decloud.worker.shell`) to carry out. It reads no clock, no chain and no file: time and chain
facts arrive inside the events, so a test plays any story in microseconds.

A state names what the worker is doing for the replicate right now, i.e. the one instruction
in flight:

| state        | in flight                                            | occupies a slot |
|--------------|------------------------------------------------------|-----------------|
| pulled       | `CheckChain`: may this worker still contribute?      | yes             |
| downloading  | `Fetch`: the app, the dataset, the input files       | yes             |
| running      | `Run`: the app in its runtime, then the digest       | yes             |
| contributing | `Contribute`: the vote, sent with the stake          | yes             |
| contributed  | `WatchTask`: waiting for a consensus on-chain        | no              |
| revealing    | `Reveal`: the vote won, prove it                     | no              |
| uploading    | `Upload`: the result archive, then its link          | no              |
| done         | nothing (final): revealed, uploaded or tried to      | no              |
| failed       | nothing (final): `cause` and `message` say why       | no              |
| dropped      | nothing (final): nobody needs the replicate any more | no              |

Every move is an edge of `TRANSITIONS`, keyed by (state, event type); an event with no edge
from the current state raises `InvalidTransition` with the replicate's story. An event whose
only edge leads back to the current state changes nothing: a withdrawal that comes after the
vote (the chain counts the vote, not the scheduler's opinion), or the late answer of an
instruction that was in flight when the replicate was dropped.

The shell persists the record after each event and before carrying out the instructions
it returned, so a restarted worker calls `resume()` and carries on: a replicate persisted in
`contributing` checks the chain before sending its vote again and is therefore never
contributed twice; one persisted in `contributed` is revealed after the restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from decloud.protocol.hub import TASK_ACTIVE, TASK_COMPLETED, TASK_FAILED, TASK_REVEALING
from decloud.runtime.spec import FailureCause
from decloud.scheduler.schemas import WorkAssignment
from decloud.scheduler.state import WorkerCause

# ------------------------------------------------------------------------------ states

ReplicateState = Literal[
    "pulled",
    "downloading",
    "running",
    "contributing",
    "contributed",
    "revealing",
    "uploading",
    "done",
    "failed",
    "dropped",
]
STATES: frozenset[ReplicateState] = frozenset(get_args(ReplicateState))
FINAL: frozenset[ReplicateState] = frozenset({"done", "failed", "dropped"})
BEFORE_VOTE: frozenset[ReplicateState] = frozenset({"pulled", "downloading", "running"})
"""Nothing is staked yet: the replicate may still be given up when the scheduler withdraws it."""
BUSY: frozenset[ReplicateState] = BEFORE_VOTE | {"contributing"}
"""What the scheduler counts against the worker's slots: handed out and not voted yet."""
WITH_DIGEST: frozenset[ReplicateState] = frozenset(
    {"contributing", "contributed", "revealing", "uploading", "done"}
)

Cause = FailureCause | WorkerCause
"""The typed causes a worker reports (`FailureReport.cause` of the scheduler's API)."""

# ------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class Event:
    """Something that happened to a replicate; `now` is wall-clock seconds, for its story."""

    now: float


@dataclass(frozen=True)
class ChainChecked(Event):
    """The task and the worker's account, as the chain shows them right now."""

    chain_now: int
    status: int
    """The task's status (`TASK_*` of decloud.protocol.hub); unset before a first vote."""
    contribution_deadline: int
    """On-chain, once the task is initialized; 0 before."""
    free_balance: int
    already_voted: bool


@dataclass(frozen=True)
class Fetched(Event):
    """The app, dataset and input files are ready in the replicate's input directory."""

    app: str
    """The module's path (WASM) or the image's id or reference (OCI)."""
    dataset_filename: str | None
    input_files: tuple[str, ...]


@dataclass(frozen=True)
class StepFailed(Event):
    """A step ended without what it was for; `cause` is typed for the requester."""

    cause: Cause
    message: str


@dataclass(frozen=True)
class FetchFailed(StepFailed):
    pass


@dataclass(frozen=True)
class RunFailed(StepFailed):
    pass


@dataclass(frozen=True)
class ContributionFailed(StepFailed):
    pass


@dataclass(frozen=True)
class RevealFailed(StepFailed):
    pass


@dataclass(frozen=True)
class Computed(Event):
    """The app ran and its output has a canonical digest."""

    digest: bytes
    callback_data: bytes


@dataclass(frozen=True)
class Contributed(Event):
    """The vote is on-chain; `tx_hash` is None when a resumed worker found it there."""

    tx_hash: str | None


@dataclass(frozen=True)
class TaskSeen(Event):
    """The task on-chain while the vote waits for a consensus."""

    chain_now: int
    status: int
    vote_is_consensus: bool
    reveal_deadline: int


@dataclass(frozen=True)
class Revealed(Event):
    """The reveal is on-chain; `tx_hash` is None when a resumed worker found it there."""

    tx_hash: str | None


@dataclass(frozen=True)
class Uploaded(Event):
    """The result store holds the archive and the scheduler was told its link."""

    link: str


@dataclass(frozen=True)
class UploadFailed(Event):
    message: str


@dataclass(frozen=True)
class Withdrawn(Event):
    """The scheduler no longer expects this replicate (lost, cancelled, or unknown)."""

    reason: str


# ------------------------------------------------------------------------ instructions


@dataclass(frozen=True)
class Instruction:
    """What the shell must do for the replicate of `taskid`."""

    taskid: bytes


@dataclass(frozen=True)
class CheckChain(Instruction):
    """Read the task and the worker's account: answers `ChainChecked`."""


@dataclass(frozen=True)
class Fetch(Instruction):
    """Download and verify the app, dataset and input files: `Fetched` or `FetchFailed`."""


@dataclass(frozen=True)
class Run(Instruction):
    """Run the app on a fresh output directory: `Computed` or `RunFailed`."""

    app: str
    dataset_filename: str | None
    input_files: tuple[str, ...]


@dataclass(frozen=True)
class Contribute(Instruction):
    """Vote for `digest`, unless the chain already holds this worker's vote: `Contributed`
    or `ContributionFailed`."""

    digest: bytes


@dataclass(frozen=True)
class WatchTask(Instruction):
    """Look at the task, after a poll interval when `wait`: `TaskSeen`."""

    digest: bytes
    wait: bool


@dataclass(frozen=True)
class Reveal(Instruction):
    """Reveal `digest`, unless already revealed: `Revealed` or `RevealFailed`."""

    digest: bytes


@dataclass(frozen=True)
class Upload(Instruction):
    """Upload the output, then report its link (and `callback_data`) to the scheduler:
    `Uploaded` or `UploadFailed`."""

    callback_data: bytes


@dataclass(frozen=True)
class Report(Instruction):
    """Tell the scheduler about progress (it counts votes from the chain, not from this)."""

    step: Literal["started", "contributed", "revealed"]
    tx_hash: str | None = None


@dataclass(frozen=True)
class ReportFailure(Instruction):
    cause: Cause
    message: str


@dataclass(frozen=True)
class CleanUp(Instruction):
    """Remove the replicate's work directory; the record is then archived."""


# ------------------------------------------------------------------------- transitions

TRANSITIONS: Mapping[tuple[ReplicateState, type[Event]], frozenset[ReplicateState]] = {
    ("pulled", ChainChecked): frozenset({"downloading", "failed", "dropped"}),
    ("downloading", Fetched): frozenset({"running"}),
    ("downloading", FetchFailed): frozenset({"failed"}),
    ("running", Computed): frozenset({"contributing"}),
    ("running", RunFailed): frozenset({"failed"}),
    ("contributing", Contributed): frozenset({"contributed"}),
    ("contributing", ContributionFailed): frozenset({"failed"}),
    ("contributed", TaskSeen): frozenset({"contributed", "revealing", "dropped"}),
    ("revealing", Revealed): frozenset({"uploading"}),
    ("revealing", RevealFailed): frozenset({"failed"}),
    ("uploading", Uploaded): frozenset({"done"}),
    ("uploading", UploadFailed): frozenset({"done"}),
    **{(state, Withdrawn): frozenset({"dropped"}) for state in BEFORE_VOTE},
    **{(state, Withdrawn): frozenset({state}) for state in STATES - BEFORE_VOTE},
    # Answers of instructions that were in flight when the replicate was withdrawn.
    **{
        ("dropped", late): frozenset({"dropped"})
        for late in (ChainChecked, Fetched, FetchFailed, Computed, RunFailed)
    },
}
"""Every allowed move. An edge whose only target is its source is a no-op (see the module
docstring)."""


# ------------------------------------------------------------------------------ record


@dataclass(frozen=True)
class StoryEntry:
    """One event that changed the replicate, and how."""

    at: float
    event: str
    change: str

    def __str__(self) -> str:
        return f"{self.at:.3f} {self.event}: {self.change}"


@dataclass
class ReplicateRecord:
    """Everything the worker knows about one replicate; what the journal persists."""

    assignment: WorkAssignment
    state: ReplicateState = "pulled"
    app: str | None = None
    dataset_filename: str | None = None
    input_files: tuple[str, ...] = ()
    digest: bytes | None = None
    callback_data: bytes = b""
    contribute_tx: str | None = None
    reveal_tx: str | None = None
    link: str | None = None
    cause: Cause | None = None
    message: str = ""
    story: list[StoryEntry] = field(default_factory=list)

    @property
    def taskid(self) -> bytes:
        return bytes.fromhex(self.assignment.taskid[2:])


class InvalidTransition(Exception):
    """An event the transition table has no edge for; carries the replicate's story."""

    def __init__(
        self, taskid: bytes, source: str, target: str, event: Event, story: list[StoryEntry]
    ) -> None:
        self.source = source
        self.target = target
        self.event = event
        self.story = list(story)
        lines = "\n".join(f"  {entry}" for entry in self.story) or "  (no story)"
        super().__init__(
            f"replicate of task 0x{taskid.hex()[:12]}: {source} -> {target} is not allowed "
            f"(on {describe(event)}); story:\n{lines}"
        )


class InvariantViolation(AssertionError):
    """`validate` found the record inconsistent; lists every broken invariant."""


def describe(event: Event) -> str:
    """A short, readable form of an event for stories and logs."""
    parts = [
        f"{item.name}={_short(getattr(event, item.name))}"
        for item in fields(event)
        if item.name != "now"
    ]
    return f"{type(event).__name__}({', '.join(parts)})"


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()[:12] if value else "0x"
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return str(value)


# ----------------------------------------------------------------------------- machine


class ReplicateMachine:
    """One replicate's decisions; changed only by `handle(event)`."""

    def __init__(self, record: ReplicateRecord) -> None:
        self.record = record
        self._handlers: dict[type[Event], Callable[[Any], list[Instruction]]] = {
            ChainChecked: self._on_chain_checked,
            Fetched: self._on_fetched,
            FetchFailed: self._on_step_failed,
            RunFailed: self._on_step_failed,
            ContributionFailed: self._on_step_failed,
            RevealFailed: self._on_step_failed,
            Computed: self._on_computed,
            Contributed: self._on_contributed,
            TaskSeen: self._on_task_seen,
            Revealed: self._on_revealed,
            Uploaded: self._on_uploaded,
            UploadFailed: self._on_upload_failed,
            Withdrawn: self._on_withdrawn,
        }

    @classmethod
    def pulled(cls, assignment: WorkAssignment, now: float) -> ReplicateMachine:
        record = ReplicateRecord(assignment)
        record.story.append(StoryEntry(now, "pulled", "-> pulled"))
        return cls(record)

    @property
    def state(self) -> ReplicateState:
        return self.record.state

    @property
    def taskid(self) -> bytes:
        return self.record.taskid

    # --- the entry points ---------------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; the instructions it calls for, in order."""
        allowed = TRANSITIONS.get((self.state, type(event)))
        if allowed is None:
            raise InvalidTransition(self.taskid, self.state, "anything", event, self.record.story)
        if allowed == {self.state}:
            return []
        return self._handlers[type(event)](event)

    def resume(self) -> list[Instruction]:
        """The instructions that carry on from the persisted state: the one that was in
        flight (each is safe to repeat), or the last words of a final state."""
        record, taskid = self.record, self.taskid
        match record.state:
            case "pulled":
                return [CheckChain(taskid)]
            case "downloading":
                return [Fetch(taskid)]
            case "running":
                assert record.app is not None, "validate: a running replicate has its app"
                return [Run(taskid, record.app, record.dataset_filename, record.input_files)]
            case "contributing":
                return [Contribute(taskid, self._digest())]
            case "contributed":
                return [WatchTask(taskid, self._digest(), wait=False)]
            case "revealing":
                return [Reveal(taskid, self._digest())]
            case "uploading":
                return [Upload(taskid, record.callback_data)]
            case "failed":
                assert record.cause is not None, "validate: a failed replicate has its cause"
                return [ReportFailure(taskid, record.cause, record.message), CleanUp(taskid)]
            case "done" | "dropped":
                return [CleanUp(taskid)]

    def validate(self) -> None:
        """Raise InvariantViolation listing every invariant the record breaks."""
        record, broken = self.record, []
        if record.state not in STATES:
            broken.append(f"unknown state {record.state!r}")
        if record.state in WITH_DIGEST and record.digest is None:
            broken.append(f"{record.state} without a digest")
        if record.state in BEFORE_VOTE and record.digest is not None:
            broken.append(f"{record.state} with a digest")
        if record.digest is not None and len(record.digest) != 32:
            broken.append("the digest is not 32 bytes")
        if (record.state == "failed") != (record.cause is not None):
            broken.append(f"{record.state} with cause {record.cause}")
        if record.state == "running" and record.app is None:
            broken.append("running without an app")
        if record.link is not None and record.state != "done":
            broken.append(f"a result link while {record.state}")
        if broken:
            raise InvariantViolation(
                f"replicate of task 0x{self.taskid.hex()[:12]}: " + "; ".join(broken)
            )

    # --- moves ----------------------------------------------------------------------------

    def _move(self, event: Event, target: ReplicateState, why: str = "") -> None:
        source = self.state
        if target not in TRANSITIONS.get((source, type(event)), frozenset()):
            raise InvalidTransition(self.taskid, source, target, event, self.record.story)
        if target == source:
            return
        change = f"{source} -> {target}" + (f": {why}" if why else "")
        self.record.story.append(StoryEntry(event.now, describe(event), change))
        self.record.state = target

    def _fail(self, event: Event, cause: Cause, message: str) -> list[Instruction]:
        self._move(event, "failed", str(cause))
        self.record.cause, self.record.message = cause, message
        return [ReportFailure(self.taskid, cause, message), CleanUp(self.taskid)]

    def _drop(self, event: Event, why: str) -> list[Instruction]:
        self._move(event, "dropped", why)
        self.record.message = why
        return [CleanUp(self.taskid)]

    def _digest(self) -> bytes:
        assert self.record.digest is not None, "validate: this state has a digest"
        return self.record.digest

    # --- handlers -------------------------------------------------------------------------

    def _on_chain_checked(self, event: ChainChecked) -> list[Instruction]:
        """Contribute only what the chain would accept: an open task, before its deadline,
        with the stake at hand. A task past the vote needs this replicate no more."""
        assignment = self.record.assignment
        if event.status not in (0, TASK_ACTIVE):
            return self._drop(event, f"the task takes no more votes (status {event.status})")
        if event.already_voted:
            return self._drop(event, "this worker already voted on the task")
        deadline = event.contribution_deadline or assignment.contribution_deadline
        if event.chain_now >= deadline:
            return self._fail(
                event,
                WorkerCause.DEADLINE_PASSED,
                f"the contribution deadline ({deadline}) passed before the worker started "
                f"(chain time {event.chain_now})",
            )
        stake = int(assignment.deal.worker_stake)
        if event.free_balance < stake:
            return self._fail(event, WorkerCause.STAKE_TOO_LOW, stake_message(event, stake))
        self._move(event, "downloading")
        return [Report(self.taskid, "started"), Fetch(self.taskid)]

    def _on_fetched(self, event: Fetched) -> list[Instruction]:
        self._move(event, "running")
        record = self.record
        record.app, record.dataset_filename = event.app, event.dataset_filename
        record.input_files = event.input_files
        return [Run(self.taskid, event.app, event.dataset_filename, event.input_files)]

    def _on_step_failed(self, event: StepFailed) -> list[Instruction]:
        return self._fail(event, event.cause, event.message)

    def _on_computed(self, event: Computed) -> list[Instruction]:
        self._move(event, "contributing")
        self.record.digest, self.record.callback_data = event.digest, event.callback_data
        return [Contribute(self.taskid, event.digest)]

    def _on_contributed(self, event: Contributed) -> list[Instruction]:
        self._move(event, "contributed")
        self.record.contribute_tx = event.tx_hash
        report = [Report(self.taskid, "contributed", event.tx_hash)] if event.tx_hash else []
        return [*report, WatchTask(self.taskid, self._digest(), wait=False)]

    def _on_task_seen(self, event: TaskSeen) -> list[Instruction]:
        """Reveal a vote that won while the reveal is open; give up a vote that lost, or a
        task that ended; otherwise keep watching (a reopened task votes again)."""
        final_deadline = self.record.assignment.final_deadline
        if event.status == TASK_REVEALING and event.vote_is_consensus:
            if event.chain_now >= event.reveal_deadline:
                return self._drop(event, "the reveal deadline passed before the worker saw it")
            self._move(event, "revealing")
            return [Reveal(self.taskid, self._digest())]
        if event.status == TASK_REVEALING:
            return self._drop(event, "another result won the consensus: this vote loses its stake")
        if event.status in (TASK_COMPLETED, TASK_FAILED):
            return self._drop(event, f"the task ended (status {event.status}) without this vote")
        if event.chain_now >= final_deadline:
            return self._drop(event, "the final deadline passed without a consensus")
        return [WatchTask(self.taskid, self._digest(), wait=True)]

    def _on_revealed(self, event: Revealed) -> list[Instruction]:
        self._move(event, "uploading")
        self.record.reveal_tx = event.tx_hash
        report = [Report(self.taskid, "revealed", event.tx_hash)] if event.tx_hash else []
        return [*report, Upload(self.taskid, self.record.callback_data)]

    def _on_uploaded(self, event: Uploaded) -> list[Instruction]:
        self._move(event, "done")
        self.record.link = event.link
        return [CleanUp(self.taskid)]

    def _on_upload_failed(self, event: UploadFailed) -> list[Instruction]:
        """The reveal stands whatever happens to the upload: the scheduler finalizes
        without a link once its upload wait is over."""
        self._move(event, "done", "upload failed")
        self.record.message = event.message
        return [CleanUp(self.taskid)]

    def _on_withdrawn(self, event: Withdrawn) -> list[Instruction]:
        return self._drop(event, event.reason)


def stake_message(event: ChainChecked, stake: int) -> str:
    """What is missing and how to get it, in the token's smallest unit."""
    return (
        f"the worker's free balance in the hub is {event.free_balance}, the deal's stake is "
        f"{stake}: deposit at least {stake - event.free_balance} more (`decloud account "
        "deposit`), or wait for locked stakes of finished tasks to return"
    )
