"""The book in SQL: insert, find, page through and remove orders; record feed changes.

Every change of an order is recorded in the feed table in the same transaction as the
change itself, so the live feed never shows a change that was rolled back, nor misses one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, delete, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from decloud.market.admission import Admitted, OrderState
from decloud.market.book import (
    EXACT_NAMES,
    NAMES,
    TAG_FILTER_BITS,
    TAG_FILTER_MASK,
    ZERO_ADDRESS,
    book_entry,
    kind_of,
)
from decloud.market.models import FeedChange, FeedEventRow, OrderKind, OrderRow, OrderStatus
from decloud.market.schemas import (
    MESSAGE_MODELS,
    BookQuery,
    OfferQuery,
    OrderMessage,
    PublishedOrder,
    RequestQuery,
    WorkerpoolQuery,
)
from decloud.service.problems import ProblemError


def insert_order(session: Session, admitted: Admitted, signature: bytes) -> OrderRow:
    """Add an admitted order as open; a 409 problem if it is already in the book."""
    row = new_row(admitted, signature)
    if find(session, row.order_hash) is not None:
        raise _duplicate(row.order_hash)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as error:  # published concurrently by another request
        raise _duplicate(row.order_hash) from error
    _record(session, FeedChange.PUBLISHED, row, published(row).model_dump(mode="json"))
    return row


def new_row(admitted: Admitted, signature: bytes) -> OrderRow:
    """The book's row of an admitted order, open, not yet added to any session."""
    entry = book_entry(admitted.order)
    return OrderRow(
        order_hash="0x" + admitted.order_hash.hex(),
        kind=kind_of(admitted.order),
        owner=admitted.owner,
        price=entry.price,
        rank=entry.rank,
        volume=admitted.order.volume,
        remaining=admitted.remaining,
        app=entry.app,
        dataset=entry.dataset,
        workerpool=entry.workerpool,
        requester=entry.requester,
        category=entry.category,
        trust=entry.trust,
        tag="0x" + entry.tag.hex(),
        tag_low_bits=entry.tag_low_bits,
        tag_high_bits=entry.tag_high_bits,
        status=OrderStatus.OPEN,
        dead_reason=None,
        message=admitted.order.to_message(),
        signature="0x" + signature.hex(),
        published_at=datetime.now(UTC),
        checked_block=admitted.block,
    )


def _duplicate(order_hash: str) -> ProblemError:
    return ProblemError(409, "order.duplicate", f"order {order_hash} is already published")


def ensure_new(session: Session, order_hash: bytes) -> None:
    """Refuse at once an order already in the book, before checking it on-chain."""
    if find(session, "0x" + order_hash.hex()) is not None:
        raise _duplicate("0x" + order_hash.hex())


def find(session: Session, order_hash: str) -> OrderRow | None:
    return session.scalar(select(OrderRow).where(OrderRow.order_hash == order_hash.lower()))


def count_open(session: Session, owner: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(OrderRow.owner == owner, OrderRow.status == OrderStatus.OPEN)
        )
        or 0
    )


def remove(session: Session, rows: Sequence[OrderRow]) -> list[str]:
    """Unpublish: the orders leave the book (they stay valid on-chain)."""
    for row in rows:
        _record(session, FeedChange.REMOVED, row, {})
    hashes = [row.order_hash for row in rows]
    if hashes:
        session.execute(delete(OrderRow).where(OrderRow.order_hash.in_(hashes)))
    return hashes


def owned(session: Session, owner: str, kind: OrderKind | None) -> list[OrderRow]:
    query = select(OrderRow).where(OrderRow.owner == owner)
    if kind is not None:
        query = query.where(OrderRow.kind == kind)
    return list(session.scalars(query))


def set_state(session: Session, row: OrderRow, state: OrderState, block: int) -> None:
    """Store what the chain says of an order now; a change goes to the feed."""
    row.checked_block = max(row.checked_block, block)
    if (row.remaining, row.status, row.dead_reason) == (
        state.remaining,
        state.status,
        state.dead_reason,
    ):
        return
    row.remaining, row.status, row.dead_reason = state.remaining, state.status, state.dead_reason
    _record(
        session,
        FeedChange.UPDATED,
        row,
        {
            "status": row.status.value,
            "remaining": str(row.remaining),
            "dead_reason": row.dead_reason,
        },
    )


def page(session: Session, kind: OrderKind, query: BookQuery) -> tuple[list[OrderRow], str | None]:
    """One page of a book, cheapest offers (highest paying requests) first, then oldest."""
    statement = (
        select(OrderRow)
        .where(OrderRow.kind == kind, OrderRow.status == query.status, *_filters(kind, query))
        .order_by(OrderRow.rank, OrderRow.seq)
        .limit(query.limit + 1)
    )
    if query.cursor is not None:
        rank, seq = _decode_cursor(query.cursor)
        statement = statement.where(
            or_(OrderRow.rank > rank, and_(OrderRow.rank == rank, OrderRow.seq > seq))
        )
    rows = list(session.scalars(statement))
    if len(rows) <= query.limit:
        return rows, None
    last = rows[query.limit - 1]
    return rows[: query.limit], _encode_cursor(last.rank, last.seq)


def _filters(kind: OrderKind, query: BookQuery) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if query.owner is not None:
        filters.append(OrderRow.owner == query.owner)
    for name in NAMES:
        value = getattr(query, name)
        if value is not None:
            column = getattr(OrderRow, name)
            exact = name in EXACT_NAMES[kind]
            filters.append(column == value if exact else column.in_([value, ZERO_ADDRESS]))
    filters += _tag_filters(query)
    if query.min_volume is not None:
        filters.append(OrderRow.remaining >= int(query.min_volume))
    if isinstance(query, OfferQuery) and query.max_price is not None:
        filters.append(OrderRow.price <= int(query.max_price))
    if isinstance(query, RequestQuery) and query.min_price is not None:
        filters.append(OrderRow.price >= int(query.min_price))
    if isinstance(query, WorkerpoolQuery | RequestQuery):
        if query.category is not None:
            filters.append(OrderRow.category == int(query.category))
        if query.min_trust is not None:
            filters.append(OrderRow.trust >= int(query.min_trust))
        if query.max_trust is not None:
            filters.append(OrderRow.trust <= int(query.max_trust))
    return filters


def _tag_filters(query: BookQuery) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if query.min_tag is not None:
        bits = _tag_filter_bits("min_tag", query.min_tag)
        filters.append(_tag_and(bits) == bits)
    if query.max_tag is not None:
        outside = TAG_FILTER_MASK & ~_tag_filter_bits("max_tag", query.max_tag)
        filters += [_tag_and(outside) == 0, OrderRow.tag_high_bits.is_(False)]
    return filters


def _tag_and(bits: int) -> ColumnElement[int]:
    return OrderRow.tag_low_bits.op("&")(literal(bits, BigInteger))


def _tag_filter_bits(name: str, tag: str) -> int:
    bits = int(tag, 16)
    if bits > TAG_FILTER_MASK:
        raise ProblemError(
            422,
            "query.tag_bits",
            f"{name} may only name tag bits 0-{TAG_FILTER_BITS - 1} (TEE is bit 0, GPU bit 8)",
        )
    return bits


def _encode_cursor(rank: int, seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([str(rank), seq]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        rank, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(rank), int(seq)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise ProblemError(
            422, "query.bad_cursor", "cursor is not one this market gave: start from page one"
        ) from error


def published(row: OrderRow) -> PublishedOrder:
    return PublishedOrder(
        order_hash=row.order_hash,
        kind=row.kind,
        owner=row.owner,
        status=row.status,
        dead_reason=row.dead_reason,
        volume=str(row.volume),
        remaining=str(row.remaining),
        price=str(row.price),
        published_at=row.published_at,
        order=_message(row),
        signature=row.signature,
    )


def _message(row: OrderRow) -> OrderMessage:
    return MESSAGE_MODELS[row.kind].model_validate(row.message)


def _record(session: Session, change: FeedChange, row: OrderRow, data: dict[str, Any]) -> None:
    session.add(
        FeedEventRow(
            change=change, order_hash=row.order_hash, kind=row.kind, data=data, at=datetime.now(UTC)
        )
    )


def feed_after(session: Session, seq: int, limit: int = 500) -> list[FeedEventRow]:
    return list(
        session.scalars(
            select(FeedEventRow)
            .where(FeedEventRow.seq > seq)
            .order_by(FeedEventRow.seq)
            .limit(limit)
        )
    )


def prune_feed(session: Session, before: datetime) -> None:
    """Forget feed events older than `before`: a client away that long reloads the book."""
    session.execute(delete(FeedEventRow).where(FeedEventRow.at < before))


def last_feed_seq(session: Session) -> int:
    return session.scalar(select(func.max(FeedEventRow.seq))) or 0
