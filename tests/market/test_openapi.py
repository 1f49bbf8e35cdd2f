"""The API as documented: its OpenAPI schema, fuzzed by schemathesis; the migrated schema;
the order models against the protocol's structs."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from sqlalchemy import inspect

from decloud.market.book import ORDER_TYPES
from decloud.market.models import MarketBase
from decloud.market.schemas import MESSAGE_MODELS, OrderPage, PublishedOrder, PublishedOrders
from decloud.service.db import Database
from tests.market.conftest import Book, dataset_order, orders


def test_no_request_makes_the_market_fail(book: Book) -> None:
    """Schemathesis fuzzes every operation but the endless feed (a bounded run) against a
    market with a few orders in it: whatever it sends, no answer is a 5xx."""
    app, pool, request = orders(book.local)
    book.published(app, "app_owner")
    book.published(pool, "pool_owner")
    book.published(request, "requester")
    schema = schemathesis.openapi.from_asgi("/openapi.json", book.http.app)
    for operation in schema.exclude(path="/v1/feed").get_all_operations():
        _fuzz(operation.ok().as_strategy())


def _fuzz(cases: st.SearchStrategy[schemathesis.Case]) -> None:
    @given(case=cases)
    @settings(
        max_examples=30, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def no_server_error(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    no_server_error()


def test_order_models_mirror_the_protocol_structs() -> None:
    for kind, order_type in ORDER_TYPES.items():
        assert list(MESSAGE_MODELS[kind].model_fields) == [name for name, _ in order_type.FIELDS]


def test_migrations_give_exactly_the_models_schema(database: Database) -> None:
    inspector = inspect(database.engine)
    for table in MarketBase.metadata.sorted_tables:
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name: c.nullable for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name


def test_answers_are_exactly_what_their_documented_models_validate_to(
    book: Book, dataset: str
) -> None:
    """Answers are built from stored rows without validating them again: validating them
    must change nothing (addresses checksummed, hashes lowercase, amounts decimal)."""
    app, pool, request = orders(book.local)
    answers = [
        book.http.post("/v1/orders", json=book.signed(app, "app_owner")).json(),
        book.http.post("/v1/orders", json=book.signed(pool, "pool_owner")).json(),
        book.http.post("/v1/orders", json=book.signed(request, "requester")).json(),
        book.http.post(
            "/v1/orders", json=book.signed(dataset_order(book.local, dataset), "dataset_owner")
        ).json(),
    ]
    for answer in answers:
        assert PublishedOrder.model_validate(answer).model_dump(mode="json") == answer
        shown = book.http.get(f"/v1/orders/{answer['order_hash']}").json()
        assert PublishedOrder.model_validate(shown).model_dump(mode="json") == shown
    for kind in ("app", "dataset", "workerpool", "request"):
        page = book.http.get(f"/v1/orderbook/{kind}", params={"limit": 1}).json()
        assert OrderPage.model_validate(page).model_dump(mode="json") == page
    batch = book.http.post(
        "/v1/orders/batch", json={"orders": [book.signed(app, "app_owner")]}
    ).json()
    assert PublishedOrders.model_validate(batch).model_dump(mode="json") == batch
