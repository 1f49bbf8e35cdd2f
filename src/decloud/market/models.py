"""The orderbook's tables: published orders, and the outbox of changes the live feed serves.

All four order types live in one table, so that a chain event naming an order hash, an
owner's limit or an unpublish finds it in one place. Each order names an app, a dataset, a
workerpool and a requester, either exactly (the resource an app order sells, the app a
request runs) or as a restriction (zero: anyone); `decloud.market.book` says which is which
per type. uint256 values are stored as 78-digit zero-padded decimal strings: exact on every
database, and ordered like the numbers they stand for.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Enum, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

UINT256_DIGITS = 78
"""2**256 - 1 has 78 decimal digits."""


class OrderKind(StrEnum):
    APP = "app"
    DATASET = "dataset"
    WORKERPOOL = "workerpool"
    REQUEST = "request"


class OrderStatus(StrEnum):
    """open: can be matched; filled: no volume left after matches; cancelled: closed on-chain
    by its owner; dead: unusable while its signer does not own the resource or cannot pay
    or stake (it reopens if that changes)."""

    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    DEAD = "dead"


class Uint256(TypeDecorator[int]):
    """A uint256 as a zero-padded decimal string: exact, and ordered numerically by every
    database's string comparison (PostgreSQL's NUMERIC would do too, SQLite's would not)."""

    impl = String(UINT256_DIGITS)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else f"{value:0{UINT256_DIGITS}d}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def _enum(enum: type[StrEnum]) -> Enum:
    """Stored by value, as a plain string: adding a member needs no database type change."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class MarketBase(DeclarativeBase):
    """Declarative base of the market's tables."""


# SQLite autoincrements only an INTEGER PRIMARY KEY.
_SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


class OrderRow(MarketBase):
    """A published order with its live state."""

    __tablename__ = "market_orders"

    seq: Mapped[int] = mapped_column(_SEQUENCE, primary_key=True, autoincrement=True)
    """Publication order: the age in the sort, unique, so the sort is total."""
    order_hash: Mapped[str] = mapped_column(String(66), unique=True)
    kind: Mapped[OrderKind] = mapped_column(_enum(OrderKind))
    owner: Mapped[str] = mapped_column(String(42))
    """The signer: the resource's owner when published, the requester of a request."""
    price: Mapped[int] = mapped_column(Uint256)
    """The price asked (app, dataset, workerpool) or the workerpool max price offered
    (request): what a counterpart compares."""
    rank: Mapped[int] = mapped_column(Uint256)
    """Ascending sort key: the price of an offer, 2**256-1 minus the price of a request
    (highest pay first), so every book is read with one index in one direction."""
    volume: Mapped[int] = mapped_column(Uint256)
    remaining: Mapped[int] = mapped_column(Uint256)
    app: Mapped[str] = mapped_column(String(42))
    dataset: Mapped[str] = mapped_column(String(42))
    workerpool: Mapped[str] = mapped_column(String(42))
    requester: Mapped[str] = mapped_column(String(42))
    category: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    trust: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    tag: Mapped[str] = mapped_column(String(66))
    tag_low_bits: Mapped[int] = mapped_column(BigInteger)
    """Bits 0-62 of the tag, for tag filters in SQL (every tag decloud names lies there)."""
    tag_high_bits: Mapped[bool]
    """Whether the tag has any bit above 62: such orders match no tag filter."""
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus))
    dead_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[dict[str, str]] = mapped_column(JSON)
    """The order exactly as signed (its JSON message)."""
    signature: Mapped[str] = mapped_column(String(132))
    """0x-hex; "0x" for an order presigned on-chain."""
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_block: Mapped[int] = mapped_column(BigInteger)
    """The chain head when the order's state was last read from the chain: a reorg below
    it means the state must be read again."""

    __table_args__ = (
        Index("ix_market_orders_book", "kind", "status", "rank", "seq"),
        Index("ix_market_orders_category_book", "kind", "status", "category", "rank", "seq"),
        Index("ix_market_orders_owner", "owner", "status"),
        Index("ix_market_orders_app", "app"),
        Index("ix_market_orders_dataset", "dataset"),
        Index("ix_market_orders_workerpool", "workerpool"),
        Index("ix_market_orders_checked_block", "checked_block"),
    )


class FeedChange(StrEnum):
    PUBLISHED = "published"
    UPDATED = "updated"
    REMOVED = "removed"


class FeedEventRow(MarketBase):
    """One change of the orderbook, in order: the live feed reads them from here, so every
    instance sharing the database serves every change, and a client resumes after the last
    event it saw (`Last-Event-ID`)."""

    __tablename__ = "market_feed"

    seq: Mapped[int] = mapped_column(_SEQUENCE, primary_key=True, autoincrement=True)
    change: Mapped[FeedChange] = mapped_column(_enum(FeedChange))
    order_hash: Mapped[str] = mapped_column(String(66))
    kind: Mapped[OrderKind] = mapped_column(_enum(OrderKind))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
