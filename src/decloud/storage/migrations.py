"""Schema migrations of the result store (component `storage`), frozen once released.

Each migration describes the tables as they were at its version; `decloud.storage.models`
describes them as they are now, and a test checks that both agree on a fresh database.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, DateTime, ForeignKey, MetaData, String, Table

from decloud.service.db import Database
from decloud.service.migrations import Migration, migrate
from decloud.service.tables import SERVICE_MIGRATIONS


def _create_archives_and_task_results(connection: Connection) -> None:
    frozen = MetaData()
    Table(
        "storage_archives",
        frozen,
        Column("cid", String(100), primary_key=True),
        Column("size", BigInteger, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("result_digest", String(66), nullable=False),
        Column("stored_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "storage_task_results",
        frozen,
        Column("taskid", String(66), primary_key=True),
        Column("cid", String(100), ForeignKey("storage_archives.cid"), nullable=False, index=True),
        Column("worker", String(42), nullable=False),
        Column("uploaded_at", DateTime(timezone=True), nullable=False),
    )
    frozen.create_all(connection)


STORAGE_MIGRATIONS = (Migration(1, "archives and task results", _create_archives_and_task_results),)


def migrate_storage(database: Database) -> None:
    """Bring the shared tables (request nonces) and the store's to this code's schema."""
    migrate(database.engine, "service", SERVICE_MIGRATIONS)
    migrate(database.engine, "storage", STORAGE_MIGRATIONS)
