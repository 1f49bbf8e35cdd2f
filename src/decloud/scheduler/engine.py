"""The state machine applied to the state kept in SQL, one transaction per event.

Each method takes the session of a transaction begun for writing (`write_transaction`),
locks the rows the event concerns, rebuilds that part of the state, lets the machine handle
the event, and writes the changes and their story back before the caller commits: a change
and the record of it are never apart. Authorizations are signed here, inside the
transaction that hands out their replicate; the chain transactions the machine asks for
(finalize, reopen, claim) are returned, to be sent once the decision is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy.orm import Session

from decloud.scheduler.models import DealRow, ReplicateRow, TaskRow
from decloud.scheduler.policy import Policy
from decloud.scheduler.state import (
    Assign,
    Capabilities,
    CapabilitiesRegistered,
    Claim,
    DealMatched,
    Event,
    Finalize,
    Instruction,
    Reopen,
    SignAuthorization,
    Tick,
    UnknownSubject,
    WorkerLoggedIn,
    WorkerPing,
    WorkPulled,
)
from decloud.scheduler.store import (
    View,
    begin_write,
    candidate_tasks,
    due_tasks,
    hex32,
    load_view,
    lock_tasks,
    lock_worker,
    ready_workers,
    save_view,
    silent_workers_tasks,
    tasks_of_deal,
)
from decloud.service.db import Database

ChainAction = Finalize | Reopen | Claim
Signer = Callable[[str, bytes], bytes]
"""(worker, taskid) -> the workerpool owner's authorization signature."""

MIN_CANDIDATES = 8
TICK_BATCH = 200
"""Tasks one tick looks at; the next tick takes the rest."""


_WRITERS: WeakKeyDictionary[Database, threading.Lock] = WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


@contextmanager
def write_transaction(database: Database) -> Iterator[Session]:
    """A transaction that will write, committed on exit (see `store.begin_write`).

    On SQLite the writers of this process also queue on a lock of their own: SQLite makes a
    second writer retry with sleeps of up to 100 ms, which, with the API's requests and the
    loop all writing, cost more than the transactions themselves. Writers of other
    processes still wait through SQLite's busy timeout.
    """
    with _writer_lock(database), database.transaction() as session:
        begin_write(session)
        yield session


class WriterBusy(RuntimeError):
    """Another writer of this process held the database longer than WRITER_WAIT_S."""


WRITER_WAIT_S = 10.0
"""The longest a writer waits for the others, as long as SQLite's own busy timeout."""


@contextmanager
def _writer_lock(database: Database) -> Iterator[None]:
    if database.is_postgresql:
        yield
        return
    with _WRITERS_LOCK:
        lock = _WRITERS.setdefault(database, threading.Lock())
    # A plain Lock, not an RLock: the API may end a request's transaction on another
    # thread of its pool than the one that began it. The wait is bounded: a request holding
    # the lock needs a thread of the same pool to run its endpoint, so unbounded waits by
    # as many requests as the pool has threads would block it, and every writer, for good.
    if not lock.acquire(timeout=WRITER_WAIT_S):
        raise WriterBusy(f"the database stayed locked by another writer for {WRITER_WAIT_S:g} s")
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class Assignment:
    """A replicate just handed out, with what the worker needs to run it."""

    deal: DealRow
    task: TaskRow
    replicate: ReplicateRow


class Engine:
    """Applies events to the scheduler's state in SQL."""

    def __init__(self, policy: Policy, sign: Signer) -> None:
        self.policy = policy
        self._sign = sign

    def _apply(self, session: Session, view: View, event: Event) -> list[Instruction]:
        instructions = view.state.handle(event)
        save_view(session, view)
        for instruction in instructions:
            if isinstance(instruction, SignAuthorization):
                row = view.replicate_row(instruction.taskid, instruction.worker)
                signature = self._sign(instruction.worker, instruction.taskid)
                row.authorization = "0x" + signature.hex()
        session.flush()
        return instructions

    def _on_tasks(self, session: Session, event: Event, rows: list[TaskRow]) -> list[ChainAction]:
        """Apply the event to these locked tasks; their replicates' workers come along."""
        view = load_view(session, self.policy, rows)
        return _chain_actions(self._apply(session, view, event))

    # --- workers ----------------------------------------------------------------------

    def _on_worker(self, session: Session, event: Event, worker: str) -> None:
        lock_worker(session, worker)
        view = load_view(session, self.policy, [], [worker])
        self._apply(session, view, event)

    def login(self, session: Session, worker: str, score: int, now: float) -> None:
        self._on_worker(session, WorkerLoggedIn(now=now, worker=worker, score=score), worker)

    def register(
        self, session: Session, worker: str, capabilities: Capabilities, now: float
    ) -> None:
        event = CapabilitiesRegistered(now=now, worker=worker, capabilities=capabilities)
        self._on_worker(session, event, worker)

    def ping(self, session: Session, worker: str, now: float) -> None:
        self._on_worker(session, WorkerPing(now=now, worker=worker), worker)

    def pull(self, session: Session, worker: str, now: float, chain_now: int) -> Assignment | None:
        """A replicate for the worker, or None when none is due to it now."""
        row = lock_worker(session, worker)
        if row is None:
            raise UnknownSubject(f"no worker {worker}")
        ready = ready_workers(session, now, self.policy)
        limit = max(MIN_CANDIDATES, len(ready) + 1)
        candidates = candidate_tasks(session, row, chain_now, self.policy, limit)
        view = load_view(session, self.policy, candidates, {worker, *ready})
        event = WorkPulled(now=now, worker=worker, chain_now=chain_now)
        for instruction in self._apply(session, view, event):
            if isinstance(instruction, Assign):
                task = view.tasks[hex32(instruction.taskid)]
                return Assignment(
                    view.deals[task.dealid],
                    task,
                    view.replicate_row(instruction.taskid, worker),
                )
        return None

    # --- tasks ------------------------------------------------------------------------

    def on_task(self, session: Session, event: Event, taskid: bytes) -> list[ChainAction]:
        """A worker's report on its replicate, or the outcome of a chain action."""
        return self._on_tasks(session, event, lock_tasks(session, [hex32(taskid)]))

    def chain_fact(self, session: Session, event: Event, taskid: bytes) -> list[ChainAction]:
        """Something the chain recorded about one of the pool's tasks; ignored for tasks of
        other pools."""
        rows = lock_tasks(session, [hex32(taskid)])
        return self._on_tasks(session, event, rows) if rows else []

    def worker_fact(self, session: Session, event: Event, worker: str) -> None:
        """Something the chain recorded about a worker (a score); ignored for strangers."""
        view = load_view(session, self.policy, [], [worker])
        self._apply(session, view, event)

    def deal_matched(self, session: Session, deal: DealRow, event: DealMatched) -> None:
        """A new deal of the pool: stored once, its tasks created (a repeat changes nothing)."""
        stored = session.get(DealRow, deal.dealid, with_for_update=True)
        if stored is None:
            session.add(deal)
            session.flush()
            stored = deal
        view = load_view(session, self.policy, tasks_of_deal(session, deal.dealid), deals=[stored])
        self._apply(session, view, event)

    def tick(self, session: Session, now: float, chain_now: int) -> list[ChainAction]:
        """Time passed: look at the tasks whose wake-up time came and those whose workers went
        silent."""
        due = due_tasks(session, now, chain_now, TICK_BATCH)
        silent = silent_workers_tasks(session, now, self.policy, TICK_BATCH)
        rows = list({row.taskid: row for row in [*due, *silent]}.values())
        return self._on_tasks(session, Tick(now=now, chain_now=chain_now), rows) if rows else []


def _chain_actions(instructions: Sequence[Instruction]) -> list[ChainAction]:
    return [i for i in instructions if isinstance(i, Finalize | Reopen | Claim)]
