"""Fixtures: a migrated scheduler database on SQLite and on a throwaway PostgreSQL, and one
anvil chain per session with a deployed protocol, a workerpool and funded workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from decloud.chain import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.scheduler.migrations import migrate_scheduler
from decloud.service.db import Database
from tests.scheduler.pool import PARTIES
from tests.service.postgres import database_url, postgres

__all__ = ["database_url", "postgres"]  # fixtures shared with tests/service


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate_scheduler(database)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def local(anvil: Anvil) -> LocalMarket:
    return LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)
