"""Fixtures: one anvil with a deployed protocol per session, a fresh book per test on SQLite
and on PostgreSQL, and helpers that sign orders as their owners would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from decloud.chain import Anvil, DatasetRegistry
from decloud.chain.localnet import LocalMarket, Party
from decloud.market.api import create_app
from decloud.market.book import ZERO_ADDRESS, AnyOrder, kind_of
from decloud.market.chain import MarketChain
from decloud.market.schemas import UnpublishAll
from decloud.market.service import migrate_market
from decloud.market.settings import MarketSettings
from decloud.protocol.orders import DatasetOrder
from decloud.service.auth import sign_request
from decloud.service.db import Database
from tests.service.postgres import database_url, postgres

__all__ = ["database_url", "postgres"]  # fixtures shared with tests/service

PARTIES = ["requester", "app_owner", "pool_owner", "dataset_owner", "stranger", "spender"]


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def local(anvil: Anvil) -> LocalMarket:
    return LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)


@pytest.fixture(scope="session")
def dataset(local: LocalMarket) -> str:
    """A dataset registered by the dataset owner."""
    owner = local["dataset_owner"]
    registry = DatasetRegistry(owner.hub.client, local.deployment.dataset_registry)
    return registry.create_dataset("mnist", "ipfs://mnist", b"\x33" * 32)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate_market(database)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str) -> MarketSettings:
    return MarketSettings(database_url=database_url, max_open_orders_per_owner=5)


@pytest.fixture
def book(local: LocalMarket, database: Database, settings: MarketSettings) -> Iterator[Book]:
    chain = MarketChain(local.rpc_url, local.deployment)
    app = create_app(settings, database, chain, run_sync=False)
    with TestClient(app) as client:
        yield Book(local, client, app.state.market.sync, chain)


@dataclass
class Book:
    """A market under test and the parties that trade on it."""

    local: LocalMarket
    http: TestClient
    sync: Any
    chain: MarketChain

    def signed(self, order: AnyOrder, signer: str) -> dict[str, Any]:
        """The publish body of `order` signed by party `signer`."""
        party = self.local[signer]
        return {
            "kind": kind_of(order).value,
            "chain_id": self.local.deployment.chain_id,
            "order": order.to_message(),
            "signature": "0x" + party.hub.sign(order, party.key).hex(),
        }

    def publish(self, order: AnyOrder, signer: str) -> Any:
        return self.http.post("/v1/orders", json=self.signed(order, signer))

    def published(self, order: AnyOrder, signer: str) -> str:
        """Publish and insist it was accepted; the order hash."""
        answer = self.publish(order, signer)
        assert answer.status_code == 201, answer.json()
        return str(answer.json()["order_hash"])

    def status(self, order_hash: str) -> tuple[str, int]:
        found = self.http.get(f"/v1/orders/{order_hash}").json()
        return found["status"], int(found["remaining"])

    def party(self, name: str) -> Party:
        return self.local[name]

    def unpublish_all(self, name: str) -> list[str]:
        party = self.party(name)
        request = UnpublishAll()
        auth = sign_request(
            request, service="market", action="unpublish-all", domain=self.chain.domain,
            private_key=party.key, signer=party.address,
        )  # fmt: skip
        body = {"request": request.model_dump(mode="json"), "auth": auth.model_dump()}
        answer = self.http.post("/v1/orders/unpublish-all", json=body)
        assert answer.status_code == 200, answer.json()
        return list(answer.json()["removed"])


def orders(local: LocalMarket, *, volume: int = 1, trust: int = 3) -> tuple[Any, Any, Any]:
    """Fresh compatible app, workerpool and request orders (new salt each call)."""
    app, pool, request = local.orders(trust=trust, volume=volume)
    return replace(app, volume=10), replace(pool, volume=10), request


def dataset_order(local: LocalMarket, dataset: str, **changes: Any) -> DatasetOrder:
    order = DatasetOrder(
        dataset=dataset,
        datasetprice=2,
        volume=5,
        tag=bytes(32),
        apprestrict=ZERO_ADDRESS,
        workerpoolrestrict=ZERO_ADDRESS,
        requesterrestrict=ZERO_ADDRESS,
        salt=local.next_salt(),
    )
    return replace(order, **changes)


def match(local: LocalMarket, app: Any, pool: Any, request: Any) -> None:
    """The requester matches the three orders, each signed by its owner."""
    hub = local["requester"].hub
    hub.match_orders(
        app, hub.sign(app, local["app_owner"].key),
        pool, hub.sign(pool, local["pool_owner"].key),
        request, hub.sign(request, local["requester"].key),
    )  # fmt: skip
