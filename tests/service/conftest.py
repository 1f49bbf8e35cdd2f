"""Shared service tests run on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from decloud.service.db import Database
from decloud.service.migrations import migrate
from decloud.service.tables import SERVICE_MIGRATIONS
from tests.service.postgres import database_url, postgres

__all__ = ["database_url", "postgres"]


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database.engine, "service", SERVICE_MIGRATIONS)
    yield database
    database.dispose()
