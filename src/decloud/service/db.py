"""One database per service: SQLite by default, PostgreSQL by URL, one session per request.

Services keep their state in SQL so that a restart loses nothing and several instances can
share one PostgreSQL. The same code runs on both: SQLite for the embedded default, tests and
the devnet, PostgreSQL for production. `Database` hides the few differences (driver name,
SQLite's connection settings) and hands out transactional sessions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from fastapi import Request
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


class Database:
    """An engine and its session factory, built from a SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        self.url = _with_driver(make_url(url))
        self.engine: Engine = _engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on exit, or rolled back on an exception."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def request_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: the request's session, one transaction for the whole request.

    The app keeps its `Database` in `app.state.database`.
    """
    database = cast(Database, request.app.state.database)
    with database.transaction() as session:
        yield session


def _with_driver(url: URL) -> URL:
    """`postgresql://` means psycopg 3 here, the driver decloud installs (SQLAlchemy's
    default for a bare `postgresql://` is psycopg2)."""
    if url.drivername == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    return url


def _engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    # Sessions run in FastAPI's thread pool and in the chain sync thread.
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if url.database in (None, "", ":memory:"):
        # An in-memory database lives as long as its one connection.
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; the busy timeout makes a second writer wait
    for the first instead of failing at once."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
