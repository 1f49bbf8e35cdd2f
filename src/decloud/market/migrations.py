"""Schema migrations of the market (component `market`), frozen once released.

Each migration describes the tables as they were at its version; `decloud.market.models`
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
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

from decloud.service.migrations import Migration

_UINT256 = String(78)
_ENUM = String(16)
_SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


def _create_orders_and_feed(connection: Connection) -> None:
    frozen = MetaData()
    orders = Table(
        "market_orders",
        frozen,
        Column("seq", _SEQUENCE, primary_key=True, autoincrement=True),
        Column("order_hash", String(66), nullable=False, unique=True),
        Column("kind", _ENUM, nullable=False),
        Column("owner", String(42), nullable=False),
        Column("price", _UINT256, nullable=False),
        Column("rank", _UINT256, nullable=False),
        Column("volume", _UINT256, nullable=False),
        Column("remaining", _UINT256, nullable=False),
        Column("app", String(42), nullable=False),
        Column("dataset", String(42), nullable=False),
        Column("workerpool", String(42), nullable=False),
        Column("requester", String(42), nullable=False),
        Column("category", _UINT256, nullable=True),
        Column("trust", _UINT256, nullable=True),
        Column("tag", String(66), nullable=False),
        Column("tag_low_bits", BigInteger, nullable=False),
        Column("tag_high_bits", Boolean, nullable=False),
        Column("status", _ENUM, nullable=False),
        Column("dead_reason", String(200), nullable=True),
        Column("message", JSON, nullable=False),
        Column("signature", String(132), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=False),
        Column("checked_block", BigInteger, nullable=False),
    )
    Index("ix_market_orders_book", orders.c.kind, orders.c.status, orders.c.rank, orders.c.seq)
    Index("ix_market_orders_owner", orders.c.owner, orders.c.status)
    Index("ix_market_orders_app", orders.c.app)
    Index("ix_market_orders_dataset", orders.c.dataset)
    Index("ix_market_orders_workerpool", orders.c.workerpool)
    Index("ix_market_orders_checked_block", orders.c.checked_block)
    Table(
        "market_feed",
        frozen,
        Column("seq", _SEQUENCE, primary_key=True, autoincrement=True),
        Column("change", _ENUM, nullable=False),
        Column("order_hash", String(66), nullable=False),
        Column("kind", _ENUM, nullable=False),
        Column("data", JSON, nullable=False),
        Column("at", DateTime(timezone=True), nullable=False, index=True),
    )
    frozen.create_all(connection)


def _index_books_by_category(connection: Connection) -> None:
    """Workerpool and request books are almost always asked for one category: with it in
    the index, a page is read in sort order among that category's orders only."""
    frozen = MetaData()
    orders = Table(
        "market_orders",
        frozen,
        Column("kind", _ENUM),
        Column("status", _ENUM),
        Column("category", _UINT256),
        Column("rank", _UINT256),
        Column("seq", _SEQUENCE),
    )
    Index(
        "ix_market_orders_category_book",
        orders.c.kind, orders.c.status, orders.c.category, orders.c.rank, orders.c.seq,
    ).create(connection)  # fmt: skip


MARKET_MIGRATIONS = (
    Migration(1, "orders and the live feed", _create_orders_and_feed),
    Migration(2, "book index by category", _index_books_by_category),
)
