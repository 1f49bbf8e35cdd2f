"""A small versioned migration runner, shared by every decloud service.

Each component (the shared `service` tables, `market`, `scheduler`, ...) declares its schema
changes as a list of numbered migrations; the database records how far each component got in
`schema_versions`. Migrations are frozen once released: they describe the schema as it was
at their version, with their own table definitions, so that a fresh database and an upgraded
one end up identical. Tests compare the migrated schema with the ORM models.

All pending migrations of a component run in one transaction (PostgreSQL and SQLite both
have transactional DDL), so a failure leaves the previous version intact. Instances that
start together against the same database take turns: an advisory lock on PostgreSQL, the
write lock (BEGIN IMMEDIATE) on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

# Any constant works; it names "decloud migrations" among the advisory locks of a database.
_ADVISORY_LOCK_KEY = 0x6465636C6F7564

_metadata = MetaData()
schema_versions = Table(
    "schema_versions",
    _metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


class MigrationError(RuntimeError):
    """The database cannot be brought to the schema this code expects."""


@dataclass(frozen=True)
class Migration:
    """One schema change: `upgrade` runs inside the migration transaction."""

    version: int
    description: str
    upgrade: Callable[[Connection], None]


def migrate(engine: Engine, component: str, migrations: Sequence[Migration]) -> int:
    """Apply the migrations of `component` the database lacks; its version afterwards."""
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        raise MigrationError(f"{component}: migrations must be numbered 1..{len(migrations)}")
    with engine.begin() as connection:
        _serialize(connection)
        schema_versions.create(connection, checkfirst=True)
        current = schema_version(connection, component)
        if current > len(migrations):
            raise MigrationError(
                f"the database's {component} schema is at version {current}, newer than this "
                f"decloud knows ({len(migrations)}): upgrade decloud"
            )
        for migration in migrations[current:]:
            migration.upgrade(connection)
        if current < len(migrations):
            _record(connection, component, current, len(migrations))
    return len(migrations)


def _serialize(connection: Connection) -> None:
    """Make the migration transaction exclusive, and on SQLite make it a transaction at all:
    Python's sqlite3 runs DDL outside of any transaction unless one was begun explicitly."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def schema_version(connection: Connection, component: str) -> int:
    """The component's applied version, 0 when it has none yet."""
    version = connection.scalar(
        select(schema_versions.c.version).where(schema_versions.c.component == component)
    )
    return int(version or 0)


def _record(connection: Connection, component: str, before: int, after: int) -> None:
    values = {"version": after, "applied_at": datetime.now(UTC)}
    if before == 0:
        connection.execute(insert(schema_versions).values(component=component, **values))
    else:
        connection.execute(
            update(schema_versions).where(schema_versions.c.component == component).values(values)
        )
