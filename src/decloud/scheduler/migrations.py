"""Schema migrations of the scheduler (component `scheduler`), frozen once released.

Each migration describes the tables as they were at its version; `decloud.scheduler.models`
describes them as they are now, and a test checks that migrating a fresh database gives
exactly the models' schema.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from decloud.service.db import Database
from decloud.service.migrations import Migration, migrate
from decloud.service.tables import SERVICE_MIGRATIONS

_HASH = String(66)
_ADDRESS = String(42)
_STATE = String(16)
_SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


def _create_scheduler_tables(connection: Connection) -> None:
    frozen = MetaData()
    Table(
        "scheduler_deals",
        frozen,
        Column("dealid", _HASH, primary_key=True),
        Column("workerpool", _ADDRESS, nullable=False, index=True),
        Column("requester", _ADDRESS, nullable=False),
        Column("deal", LargeBinary, nullable=False),
        Column("params", Text, nullable=False),
        Column("app_type", String(8), nullable=False),
        Column("app_multiaddr", Text, nullable=False),
        Column("app_checksum", _HASH, nullable=False),
        Column("app_mrenclave", Text, nullable=False),
        Column("dataset_multiaddr", Text, nullable=False),
        Column("dataset_checksum", _HASH, nullable=False),
        Column("tee", Boolean, nullable=False),
        Column("gpu", Boolean, nullable=False),
        Column("trust", BigInteger, nullable=False),
        Column("time_ref", BigInteger, nullable=False),
        Column("start_time", BigInteger, nullable=False),
        Column("block_number", BigInteger, nullable=False),
    )
    Table(
        "scheduler_tasks",
        frozen,
        Column("taskid", _HASH, primary_key=True),
        Column("dealid", _HASH, ForeignKey("scheduler_deals.dealid"), nullable=False, index=True),
        Column("task_index", BigInteger, nullable=False),
        Column("state", _STATE, nullable=False, index=True),
        Column("contribution_deadline", BigInteger, nullable=False),
        Column("consensus", _HASH, nullable=True),
        Column("reveal_deadline", BigInteger, nullable=True),
        Column("all_revealed_at", Float, nullable=True),
        Column("results", Text, nullable=True),
        Column("callback_data", LargeBinary, nullable=False),
        Column("reason", Text, nullable=False),
        Column("retry_at", Float, nullable=True),
        Column("wake_wall", Float, nullable=True, index=True),
        Column("wake_chain", BigInteger, nullable=True, index=True),
    )
    replicates = Table(
        "scheduler_replicates",
        frozen,
        Column("taskid", _HASH, ForeignKey("scheduler_tasks.taskid"), primary_key=True),
        Column("worker", _ADDRESS, primary_key=True),
        Column("state", _STATE, nullable=False),
        Column("assigned_at", Float, nullable=False),
        Column("progress_at", Float, nullable=False),
        Column("weight", BigInteger, nullable=False),
        Column("result_hash", _HASH, nullable=True),
        Column("digest", _HASH, nullable=True),
        Column("cause", String(32), nullable=True),
        Column("message", Text, nullable=False),
        Column("results", Text, nullable=True),
        Column("authorization", String(132), nullable=True),
    )
    Index("ix_scheduler_replicates_worker_state", replicates.c.worker, replicates.c.state)
    Table(
        "scheduler_workers",
        frozen,
        Column("address", _ADDRESS, primary_key=True),
        Column("score", BigInteger, nullable=False),
        Column("cores", Integer, nullable=True),
        Column("memory_mb", Integer, nullable=True),
        Column("runtimes", JSON, nullable=True),
        Column("gpu", Boolean, nullable=False),
        Column("tee", Boolean, nullable=False),
        Column("slots", Integer, nullable=False),
        Column("last_ping", Float, nullable=False, index=True),
        Column("last_pull", Float, nullable=True, index=True),
        Column("last_assigned", Float, nullable=True),
        Column("lost", Boolean, nullable=False),
    )
    Table(
        "scheduler_sessions",
        frozen,
        Column("token_hash", String(64), primary_key=True),
        Column("worker", _ADDRESS, nullable=False, index=True),
        Column("expires_at", Float, nullable=False, index=True),
    )
    Table(
        "scheduler_history",
        frozen,
        Column("seq", _SEQUENCE, primary_key=True, autoincrement=True),
        Column("at", Float, nullable=False),
        Column("taskid", _HASH, nullable=True, index=True),
        Column("kind", String(40), nullable=False),
        Column("description", Text, nullable=False),
        Column("data", JSON, nullable=False),
        Column("changes", JSON, nullable=False),
    )
    Table(
        "scheduler_logs",
        frozen,
        Column("taskid", _HASH, primary_key=True),
        Column("worker", _ADDRESS, primary_key=True),
        Column("stdout", LargeBinary, nullable=False),
        Column("stderr", LargeBinary, nullable=False),
        Column("stdout_total", BigInteger, nullable=False),
        Column("stderr_total", BigInteger, nullable=False),
        Column("at", Float, nullable=False),
    )
    frozen.create_all(connection)


SCHEDULER_MIGRATIONS = (
    Migration(
        1,
        "deals, tasks, replicates, workers, sessions, history and logs",
        _create_scheduler_tables,
    ),
)


def migrate_scheduler(database: Database) -> None:
    """Bring the shared tables (cursors, request nonces) and the scheduler's to this code's
    schema."""
    migrate(database.engine, "service", SERVICE_MIGRATIONS)
    migrate(database.engine, "scheduler", SCHEDULER_MIGRATIONS)
