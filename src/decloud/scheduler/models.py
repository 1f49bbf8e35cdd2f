"""The scheduler's tables: deals, tasks, replicates, workers, sessions, history and logs.

Rows hold what `decloud.scheduler.state` needs to rebuild its objects, plus what the API
answers with (the deal's terms, the app and dataset of the registries, the signed
authorization). Times are unix seconds as floats (wall clock) or integers (block time, as
deadlines are). Tasks carry their next wake-up times so that the clock finds due tasks with
an index instead of reading every task. A task's row lock guards its replicates: every write
to a replicate happens with its task's row locked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

HASH = String(66)
"""0x-hex of 32 bytes."""
ADDRESS = String(42)
STATE = String(16)
# SQLite autoincrements only an INTEGER PRIMARY KEY.
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


class SchedulerBase(DeclarativeBase):
    """Declarative base of the scheduler's tables."""


class DealRow(SchedulerBase):
    """A deal of this workerpool, with what workers need to run its tasks."""

    __tablename__ = "scheduler_deals"

    dealid: Mapped[str] = mapped_column(HASH, primary_key=True)
    workerpool: Mapped[str] = mapped_column(ADDRESS, index=True)
    requester: Mapped[str] = mapped_column(ADDRESS)
    deal: Mapped[bytes] = mapped_column(LargeBinary)
    """abi_encode(Deal): the terms every task call passes back to the hub."""
    params: Mapped[str] = mapped_column(Text)
    app_type: Mapped[str] = mapped_column(String(8))
    app_multiaddr: Mapped[str] = mapped_column(Text)
    app_checksum: Mapped[str] = mapped_column(HASH)
    app_mrenclave: Mapped[str] = mapped_column(Text)
    dataset_multiaddr: Mapped[str] = mapped_column(Text)
    dataset_checksum: Mapped[str] = mapped_column(HASH)
    tee: Mapped[bool] = mapped_column(Boolean)
    gpu: Mapped[bool] = mapped_column(Boolean)
    trust: Mapped[int] = mapped_column(BigInteger)
    time_ref: Mapped[int] = mapped_column(BigInteger)
    start_time: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)


class TaskRow(SchedulerBase):
    """One task and where its life stands (see `state.Task`)."""

    __tablename__ = "scheduler_tasks"

    taskid: Mapped[str] = mapped_column(HASH, primary_key=True)
    dealid: Mapped[str] = mapped_column(ForeignKey("scheduler_deals.dealid"), index=True)
    task_index: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(STATE, index=True)
    contribution_deadline: Mapped[int] = mapped_column(BigInteger)
    consensus: Mapped[str | None] = mapped_column(HASH, nullable=True)
    reveal_deadline: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    all_revealed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    results: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_data: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    retry_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    wake_wall: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    wake_chain: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)


class ReplicateRow(SchedulerBase):
    """One worker's execution of one task; the key makes a second one impossible."""

    __tablename__ = "scheduler_replicates"

    taskid: Mapped[str] = mapped_column(ForeignKey("scheduler_tasks.taskid"), primary_key=True)
    worker: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    state: Mapped[str] = mapped_column(STATE)
    assigned_at: Mapped[float] = mapped_column(Float)
    progress_at: Mapped[float] = mapped_column(Float)
    weight: Mapped[int] = mapped_column(BigInteger)
    result_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)
    digest: Mapped[str | None] = mapped_column(HASH, nullable=True)
    cause: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    results: Mapped[str | None] = mapped_column(Text, nullable=True)
    authorization: Mapped[str | None] = mapped_column(String(132), nullable=True)
    """The workerpool owner's signature that lets the worker contribute, 0x-hex."""

    __table_args__ = (Index("ix_scheduler_replicates_worker_state", "worker", "state"),)


class WorkerRow(SchedulerBase):
    """A worker that logged in, its capabilities (null until registered) and liveness."""

    __tablename__ = "scheduler_workers"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    score: Mapped[int] = mapped_column(BigInteger)
    cores: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runtimes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    gpu: Mapped[bool] = mapped_column(Boolean)
    tee: Mapped[bool] = mapped_column(Boolean)
    slots: Mapped[int] = mapped_column(Integer)
    last_ping: Mapped[float] = mapped_column(Float, index=True)
    last_pull: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    last_assigned: Mapped[float | None] = mapped_column(Float, nullable=True)
    lost: Mapped[bool] = mapped_column(Boolean)


class SessionRow(SchedulerBase):
    """A worker's session; only the token's sha256 is kept, so a database leak gives no
    session away."""

    __tablename__ = "scheduler_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker: Mapped[str] = mapped_column(ADDRESS, index=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class HistoryRow(SchedulerBase):
    """One event and what it changed: the story of a task (or of a worker, when `taskid`
    is null), written in the transaction of the change itself."""

    __tablename__ = "scheduler_history"

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    taskid: Mapped[str | None] = mapped_column(HASH, nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    changes: Mapped[list[str]] = mapped_column(JSON)


class LogRow(SchedulerBase):
    """The head of the app's stdout and stderr for one replicate, as its worker sent them."""

    __tablename__ = "scheduler_logs"

    taskid: Mapped[str] = mapped_column(HASH, primary_key=True)
    worker: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    stdout: Mapped[bytes] = mapped_column(LargeBinary)
    stderr: Mapped[bytes] = mapped_column(LargeBinary)
    stdout_total: Mapped[int] = mapped_column(BigInteger)
    stderr_total: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[float] = mapped_column(Float)
