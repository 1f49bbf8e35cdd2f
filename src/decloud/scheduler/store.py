"""The state machine's memory in SQL: load the part of the state an event concerns, with
row locks, and write back what the event changed, and its story, in the same transaction.

Several scheduler instances may share one PostgreSQL database. They never hand out a
replicate twice because every change to a task or its replicates happens with the task's
row locked (`SELECT ... FOR UPDATE`); work is looked for with `SKIP LOCKED`, so an instance
takes the tasks another one is not deciding about instead of waiting for them. SQLite has no
row locks: there a writing transaction takes the database's write lock when it begins
(`BEGIN IMMEDIATE`), which serializes writers within one host.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from decloud.scheduler.models import DealRow, HistoryRow, ReplicateRow, TaskRow, WorkerRow
from decloud.scheduler.policy import Policy
from decloud.scheduler.state import (
    ASSIGNABLE,
    PENDING,
    TASK_DONE,
    Capabilities,
    Event,
    Replicate,
    Requirements,
    SchedulerState,
    StoryEntry,
    Task,
    TaskState,
    Terms,
    Worker,
    describe,
    parse_cause,
)

FAILED_REPLICATES = ("failed", "lost", "rejected")
"""Replicate states that count against a worker's reliability."""


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def begin_write(session: Session) -> None:
    """Start a transaction that will write. On SQLite, take the write lock now: a
    transaction that read first and wrote later could find another writer's changes in
    between and fail instead of waiting. PostgreSQL locks rows as they are read."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


# --------------------------------------------------------------------------------- view


@dataclass
class View:
    """A `SchedulerState` rebuilt from rows, and the rows to write it back to."""

    state: SchedulerState
    deals: dict[str, DealRow]
    tasks: dict[str, TaskRow]
    replicates: dict[tuple[str, str], ReplicateRow]
    workers: dict[str, WorkerRow]

    def replicate_row(self, taskid: bytes, worker: str) -> ReplicateRow:
        return self.replicates[(hex32(taskid), worker)]


def load_view(
    session: Session,
    policy: Policy,
    task_rows: Sequence[TaskRow],
    workers: Iterable[str] = (),
    deals: Sequence[DealRow] = (),
) -> View:
    """The state of these tasks (already locked by the caller), their replicates' workers and
    `workers`, with the deals of the tasks and any `deals` given."""
    taskids = [row.taskid for row in task_rows]
    deal_rows = {row.dealid: row for row in deals}
    wanted = {row.dealid for row in task_rows} - set(deal_rows)
    if wanted:
        deal_rows.update(
            (row.dealid, row)
            for row in session.scalars(select(DealRow).where(DealRow.dealid.in_(wanted)))
        )
    replicate_rows = {
        (row.taskid, row.worker): row
        for row in session.scalars(select(ReplicateRow).where(ReplicateRow.taskid.in_(taskids)))
    }
    by_task: dict[str, list[ReplicateRow]] = {}
    for replicate in replicate_rows.values():
        by_task.setdefault(replicate.taskid, []).append(replicate)
    stories = _stories(session, taskids)
    state = SchedulerState(policy)
    for row in task_rows:
        replicates = by_task.get(row.taskid, [])
        task = _task(row, deal_rows[row.dealid], replicates, stories.get(row.taskid, []))
        state.tasks[task.taskid] = task
    addresses = set(workers) | {worker for _, worker in replicate_rows}
    worker_rows = _load_workers(session, state, addresses)
    return View(state, deal_rows, {r.taskid: r for r in task_rows}, replicate_rows, worker_rows)


def _stories(session: Session, taskids: Sequence[str]) -> dict[str, list[StoryEntry]]:
    stories: dict[str, list[StoryEntry]] = {}
    # The columns a story shows, not whole rows: every event of a task reads its story, and
    # the rows' `data` (JSON) would be parsed for nothing.
    rows = session.execute(
        select(HistoryRow.taskid, HistoryRow.at, HistoryRow.description, HistoryRow.changes)
        .where(HistoryRow.taskid.in_(taskids))
        .order_by(HistoryRow.seq)
    )
    for taskid, at, description, changes in rows:
        stories.setdefault(taskid or "", []).append(StoryEntry(at, description, tuple(changes)))
    return stories


def terms_of(deal: DealRow) -> Terms:
    return Terms(
        dealid=unhex(deal.dealid),
        trust=deal.trust,
        time_ref=deal.time_ref,
        start_time=deal.start_time,
        requirements=Requirements(deal.app_type, tee=deal.tee, gpu=deal.gpu),
    )


def _task(
    row: TaskRow, deal: DealRow, replicates: Sequence[ReplicateRow], story: list[StoryEntry]
) -> Task:
    state: TaskState = row.state  # type: ignore[assignment]  # written by save_view only
    return Task(
        taskid=unhex(row.taskid),
        index=row.task_index,
        terms=terms_of(deal),
        state=state,
        replicates={r.worker: _replicate(r) for r in replicates},
        contribution_deadline=row.contribution_deadline,
        consensus=None if row.consensus is None else unhex(row.consensus),
        reveal_deadline=row.reveal_deadline,
        all_revealed_at=row.all_revealed_at,
        results=row.results,
        callback_data=row.callback_data,
        reason=row.reason,
        retry_at=row.retry_at,
        story=story,
    )


def _replicate(row: ReplicateRow) -> Replicate:
    return Replicate(
        worker=row.worker,
        state=row.state,  # type: ignore[arg-type]  # written by save_view only
        assigned_at=row.assigned_at,
        progress_at=row.progress_at,
        weight=row.weight,
        result_hash=None if row.result_hash is None else unhex(row.result_hash),
        digest=None if row.digest is None else unhex(row.digest),
        cause=None if row.cause is None else parse_cause(row.cause),
        message=row.message,
        results=row.results,
    )


def _load_workers(
    session: Session, state: SchedulerState, addresses: set[str]
) -> dict[str, WorkerRow]:
    rows = {
        row.address: row
        for row in session.scalars(select(WorkerRow).where(WorkerRow.address.in_(addresses)))
    }
    counts: dict[tuple[str, str], int] = {
        (worker, replicate_state): count
        for worker, replicate_state, count in session.execute(
            select(ReplicateRow.worker, ReplicateRow.state, func.count())
            .where(ReplicateRow.worker.in_(rows))
            .group_by(ReplicateRow.worker, ReplicateRow.state)
        )
    }
    for address, row in rows.items():
        worker = _worker(row)
        pending = sum(counts.get((address, s), 0) for s in PENDING)
        worker.successes = counts.get((address, "revealed"), 0)
        worker.failures = sum(counts.get((address, s), 0) for s in FAILED_REPLICATES)
        worker.active_elsewhere = pending - state.active(worker)
        state.workers[address] = worker
    return rows


def _worker(row: WorkerRow) -> Worker:
    capabilities = None
    if row.runtimes is not None and row.cores is not None and row.memory_mb is not None:
        capabilities = Capabilities(
            cores=row.cores,
            memory_mb=row.memory_mb,
            runtimes=frozenset(row.runtimes),
            gpu=row.gpu,
            tee=row.tee,
            slots=row.slots,
        )
    return Worker(
        address=row.address,
        score=row.score,
        capabilities=capabilities,
        last_ping=row.last_ping,
        last_pull=row.last_pull,
        last_assigned=row.last_assigned,
        lost=row.lost,
    )


# ------------------------------------------------------------------------------- saving


def save_view(session: Session, view: View) -> None:
    """Write back every task and worker the events touched, and their history."""
    state = view.state
    for taskid in state.touched_tasks:
        _save_task(session, view, state.tasks[taskid])
    for address in state.touched_workers:
        _save_worker(session, view, state.workers[address])
    for event, subject, changes in state.history:
        session.add(
            HistoryRow(
                at=event.now,
                taskid=None if subject is None else hex32(subject),
                kind=type(event).__name__,
                description=describe(event),
                data=event_data(event),
                changes=list(changes),
            )
        )
    state.touched_tasks.clear()
    state.touched_workers.clear()
    state.history.clear()
    session.flush()


def _save_task(session: Session, view: View, task: Task) -> None:
    key = hex32(task.taskid)
    row = view.tasks.get(key)
    created = row is None
    if row is None:
        row = TaskRow(taskid=key, dealid=hex32(task.terms.dealid), task_index=task.index)
        session.add(row)
        view.tasks[key] = row
    row.state = task.state
    row.contribution_deadline = task.contribution_deadline
    row.consensus = None if task.consensus is None else hex32(task.consensus)
    row.reveal_deadline = task.reveal_deadline
    row.all_revealed_at = task.all_revealed_at
    row.results = task.results
    row.callback_data = task.callback_data
    row.reason = task.reason
    row.retry_at = task.retry_at
    row.wake_wall, row.wake_chain = view.state.wakeups(task)
    if created:
        # New tasks go in before their replicates: the replicates' foreign key needs them.
        session.flush()
    for replicate in task.replicates.values():
        _save_replicate(session, view, key, replicate)


def _save_replicate(session: Session, view: View, taskid: str, replicate: Replicate) -> None:
    row = view.replicates.get((taskid, replicate.worker))
    if row is None:
        row = ReplicateRow(taskid=taskid, worker=replicate.worker)
        session.add(row)
        view.replicates[(taskid, replicate.worker)] = row
    row.state = replicate.state
    row.assigned_at = replicate.assigned_at
    row.progress_at = replicate.progress_at
    row.weight = replicate.weight
    row.result_hash = None if replicate.result_hash is None else hex32(replicate.result_hash)
    row.digest = None if replicate.digest is None else hex32(replicate.digest)
    row.cause = None if replicate.cause is None else str(replicate.cause)
    row.message = replicate.message
    row.results = replicate.results


def _save_worker(session: Session, view: View, worker: Worker) -> None:
    row = view.workers.get(worker.address)
    if row is None:
        row = WorkerRow(address=worker.address)
        session.add(row)
        view.workers[worker.address] = row
    row.score = worker.score
    capabilities = worker.capabilities
    row.cores = None if capabilities is None else capabilities.cores
    row.memory_mb = None if capabilities is None else capabilities.memory_mb
    row.runtimes = None if capabilities is None else sorted(capabilities.runtimes)
    row.gpu = capabilities is not None and capabilities.gpu
    row.tee = capabilities is not None and capabilities.tee
    row.slots = 1 if capabilities is None else capabilities.slots
    row.last_ping = worker.last_ping
    row.last_pull = worker.last_pull
    row.last_assigned = worker.last_assigned
    row.lost = worker.lost


def event_data(event: Event) -> dict[str, Any]:
    """The event's fields as JSON values, for the history table."""
    return {item.name: _json(getattr(event, item.name)) for item in fields(event)}


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return hex32(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, frozenset):
        return sorted(_json(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _json(getattr(value, item.name)) for item in fields(value)}
    return value


# -------------------------------------------------------------------------------- locks


def lock_tasks(session: Session, taskids: Iterable[str]) -> list[TaskRow]:
    """These tasks, locked until the transaction ends (waiting for other holders), in key
    order so that two transactions locking several tasks cannot deadlock."""
    return list(
        session.scalars(
            select(TaskRow)
            .where(TaskRow.taskid.in_(set(taskids)))
            .order_by(TaskRow.taskid)
            .with_for_update()
        )
    )


def lock_worker(session: Session, address: str) -> WorkerRow | None:
    """The worker's row, locked: one worker's pulls and reports are taken one at a time."""
    return session.scalars(
        select(WorkerRow).where(WorkerRow.address == address).with_for_update()
    ).one_or_none()


def ready_workers(session: Session, now: float, policy: Policy) -> list[str]:
    """Workers that asked for work recently and are not lost."""
    return list(
        session.scalars(
            select(WorkerRow.address).where(
                WorkerRow.last_pull >= now - policy.ready_window_s, WorkerRow.lost.is_(False)
            )
        )
    )


def candidate_tasks(
    session: Session, worker: WorkerRow, chain_now: int, policy: Policy, limit: int
) -> list[TaskRow]:
    """Tasks the worker could get, locked, skipping those another transaction holds: open
    for contributions, runnable by the worker, not already its. The state machine decides
    which of them need a replicate."""
    mine = exists().where(
        ReplicateRow.taskid == TaskRow.taskid, ReplicateRow.worker == worker.address
    )
    conditions = [
        TaskRow.state.in_(ASSIGNABLE),
        TaskRow.contribution_deadline > chain_now + policy.assign_cutoff_s,
        DealRow.app_type.in_(worker.runtimes or []),
        ~mine,
    ]
    if not worker.tee:
        conditions.append(DealRow.tee.is_(False))
    if not worker.gpu:
        conditions.append(DealRow.gpu.is_(False))
    query = (
        select(TaskRow)
        .join(DealRow, DealRow.dealid == TaskRow.dealid)
        .where(*conditions)
        .order_by(
            case((TaskRow.state == "active", 0), else_=1),
            DealRow.start_time,
            TaskRow.dealid,
            TaskRow.task_index,
        )
        .limit(limit)
        .with_for_update(skip_locked=True, of=TaskRow)
    )
    return list(session.scalars(query))


def due_tasks(session: Session, now: float, chain_now: int, limit: int) -> list[TaskRow]:
    """Unfinished tasks whose wake-up time has come, locked, skipping those held."""
    return list(
        session.scalars(
            select(TaskRow)
            .where(
                TaskRow.state.not_in(TASK_DONE),
                or_(TaskRow.wake_wall <= now, TaskRow.wake_chain <= chain_now),
            )
            .order_by(TaskRow.taskid)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def silent_workers_tasks(session: Session, now: float, policy: Policy, limit: int) -> list[TaskRow]:
    """Tasks with a pending replicate whose worker has not pinged for too long, locked,
    skipping those held."""
    silent = (
        select(ReplicateRow.taskid)
        .join(WorkerRow, WorkerRow.address == ReplicateRow.worker)
        .where(
            ReplicateRow.state.in_(PENDING),
            WorkerRow.last_ping < now - policy.lost_after_s,
        )
    )
    return list(
        session.scalars(
            select(TaskRow)
            .where(TaskRow.taskid.in_(silent))
            .order_by(TaskRow.taskid)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def tasks_of_deal(session: Session, dealid: str) -> list[TaskRow]:
    """The tasks of a deal, locked."""
    return list(
        session.scalars(
            select(TaskRow)
            .where(TaskRow.dealid == dealid)
            .order_by(TaskRow.taskid)
            .with_for_update()
        )
    )


def replicate_counts(session: Session) -> dict[str, int]:
    """Replicates by state, over the whole database (for metrics)."""
    rows = session.execute(select(ReplicateRow.state, func.count()).group_by(ReplicateRow.state))
    return dict(rows.all())


def task_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(TaskRow.state, func.count()).group_by(TaskRow.state))
    return dict(rows.all())


def alive_workers(session: Session, now: float, policy: Policy) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(WorkerRow)
            .where(
                and_(WorkerRow.last_ping >= now - policy.lost_after_s, WorkerRow.lost.is_(False))
            )
        )
        or 0
    )


def task_with_deal(session: Session, taskid: str) -> tuple[TaskRow, DealRow] | None:
    """A task and its deal, read without locks."""
    found = session.execute(
        select(TaskRow, DealRow)
        .join(DealRow, DealRow.dealid == TaskRow.dealid)
        .where(TaskRow.taskid == taskid)
    ).one_or_none()
    return None if found is None else (found[0], found[1])
