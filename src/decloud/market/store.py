"""The book in SQL: insert, find, page through and remove orders; record feed changes.

Every change of an order is recorded in the feed table in the same transaction as the
change itself, so the live feed never shows a change that was rolled back, nor misses one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
)
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
    PublishedOrder,
    RequestQuery,
    WorkerpoolQuery,
)
from decloud.service.problems import ProblemError

_ANSWER_COLUMNS = (
    OrderRow.order_hash, OrderRow.kind, OrderRow.owner, OrderRow.status, OrderRow.dead_reason,
    OrderRow.volume, OrderRow.remaining, OrderRow.price, OrderRow.published_at,
    OrderRow.message, OrderRow.signature,
)  # fmt: skip
"""What an answer shows of a row: reads select these alone, as plain rows (no ORM objects)."""


def insert_orders(
    session: Session, admitted: Sequence[Admitted]
) -> Sequence[PublishedOrder | ProblemError]:
    """Add admitted orders as open, with their feed events; each as published. An order
    published meanwhile by another request gets a 409 problem; the others still go in."""
    rows = [new_columns(order) for order in admitted]
    answers = [published(row) for row in rows]
    try:
        with session.begin_nested():
            _insert(session, rows, answers)
    except IntegrityError:  # one of them was published concurrently: find out which
        return [
            _insert_alone(session, row, answer) for row, answer in zip(rows, answers, strict=True)
        ]
    return answers


def _insert_alone(
    session: Session, row: dict[str, Any], answer: PublishedOrder
) -> PublishedOrder | ProblemError:
    try:
        with session.begin_nested():
            _insert(session, [row], [answer])
    except IntegrityError:
        return duplicate(answer.order_hash)
    return answer


def _insert(
    session: Session, rows: Sequence[dict[str, Any]], answers: Sequence[PublishedOrder]
) -> None:
    """Two multi-row INSERTs of one-row statements (executemany), which psycopg sends in
    one pipeline and parses once. The unit of work would send one statement holding every
    row's values, which psycopg parses anew each time: 30 ms for 50 orders."""
    session.execute(insert(OrderRow), rows)
    session.execute(
        insert(FeedEventRow),
        [_feed_event(FeedChange.PUBLISHED, row, answer.model_dump(mode="json"))
         for row, answer in zip(rows, answers, strict=True)],
    )  # fmt: skip


def new_columns(admitted: Admitted) -> dict[str, Any]:
    """The book's row of an admitted order, open: its columns but `seq`, which the database
    numbers. (Plain values: an ORM object costs more to build than the row to write.)"""
    entry = book_entry(admitted.order)
    return {
        "order_hash": "0x" + admitted.order_hash.hex(),
        "kind": kind_of(admitted.order),
        "owner": admitted.owner,
        "price": entry.price,
        "rank": entry.rank,
        "volume": admitted.order.volume,
        "remaining": admitted.remaining,
        "app": entry.app,
        "dataset": entry.dataset,
        "workerpool": entry.workerpool,
        "requester": entry.requester,
        "category": entry.category,
        "trust": entry.trust,
        "tag": "0x" + entry.tag.hex(),
        "tag_low_bits": entry.tag_low_bits,
        "tag_high_bits": entry.tag_high_bits,
        "status": OrderStatus.OPEN,
        "dead_reason": None,
        "message": admitted.order.to_message(),
        "signature": "0x" + admitted.signature.hex(),
        "published_at": datetime.now(UTC),
        "checked_block": admitted.block,
    }


def duplicate(order_hash: str) -> ProblemError:
    return ProblemError(409, "order.duplicate", f"order {order_hash} is already published")


def already_published(session: Session, order_hashes: Collection[str]) -> set[str]:
    """Those of `order_hashes` (0x-hex, lowercase) already in the book."""
    return set(
        session.scalars(select(OrderRow.order_hash).where(OrderRow.order_hash.in_(order_hashes)))
    )


def find(session: Session, order_hash: str) -> OrderRow | None:
    return session.scalar(select(OrderRow).where(OrderRow.order_hash == order_hash.lower()))


def open_counts(session: Session, owners: Collection[str]) -> dict[str, int]:
    """How many open orders each of `owners` has in the book (absent: none)."""
    counts = session.execute(
        select(OrderRow.owner, func.count())
        .where(OrderRow.owner.in_(owners), OrderRow.status == OrderStatus.OPEN)
        .group_by(OrderRow.owner)
    )
    return {owner: count for owner, count in counts}


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


def page(
    session: Session, kind: OrderKind, query: BookQuery
) -> tuple[list[PublishedOrder], str | None]:
    """One page of a book, cheapest offers (highest paying requests) first, then oldest."""
    statement = (
        select(*_ANSWER_COLUMNS, OrderRow.rank, OrderRow.seq)
        .where(OrderRow.kind == kind, OrderRow.status == query.status, *_filters(kind, query))
        .order_by(OrderRow.rank, OrderRow.seq)
        .limit(query.limit + 1)
    )
    if query.cursor is not None:
        rank, seq = _decode_cursor(query.cursor)
        statement = statement.where(
            or_(OrderRow.rank > rank, and_(OrderRow.rank == rank, OrderRow.seq > seq))
        )
    rows = session.execute(statement).mappings().all()
    orders = [published(row) for row in rows[: query.limit]]
    if len(rows) <= query.limit:
        return orders, None
    last = rows[query.limit - 1]
    return orders, _encode_cursor(last["rank"], last["seq"])


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
    """Tag filters as inequalities, which say the same: `tags & bits` is a submask of `bits`,
    so it is at least `bits` only when equal to it, and at most 0 only when 0. PostgreSQL
    guesses that an equality on an expression keeps 0.5% of the rows, and then prefers
    sorting a scan of the whole book to walking the sort's index (50 ms instead of 0.3 ms
    with 100,000 orders); for an inequality it guesses a third, close to the truth."""
    filters: list[ColumnElement[bool]] = []
    if query.min_tag is not None:
        bits = _tag_filter_bits("min_tag", query.min_tag)
        if bits:
            filters.append(_tag_and(bits) >= bits)
    if query.max_tag is not None:
        outside = TAG_FILTER_MASK & ~_tag_filter_bits("max_tag", query.max_tag)
        filters += [_tag_and(outside) <= 0, OrderRow.tag_high_bits.is_(False)]
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


def find_published(session: Session, order_hash: str) -> PublishedOrder | None:
    row = session.execute(
        select(*_ANSWER_COLUMNS).where(OrderRow.order_hash == order_hash.lower())
    ).mappings().first()  # fmt: skip
    return None if row is None else published(row)


def published(row: Mapping[Any, Any]) -> PublishedOrder:
    """The API form of a row's `_ANSWER_COLUMNS`, built without validating them again:
    every value was validated, every address checksummed, when the order was admitted, and
    validating them again took most of a query's time (each address checksum is a keccak)."""
    message = row["message"]
    return PublishedOrder.model_construct(
        order_hash=row["order_hash"],
        kind=row["kind"],
        owner=row["owner"],
        status=row["status"],
        dead_reason=row["dead_reason"],
        volume=str(row["volume"]),
        remaining=str(row["remaining"]),
        price=str(row["price"]),
        published_at=_as_utc(row["published_at"]),
        order=MESSAGE_MODELS[row["kind"]].model_construct(set(message), **message),
        signature=row["signature"],
    )


def _record(session: Session, change: FeedChange, row: OrderRow, data: dict[str, Any]) -> None:
    columns = {"order_hash": row.order_hash, "kind": row.kind}
    session.add(FeedEventRow(**_feed_event(change, columns, data)))


def _as_utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every time the market writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _feed_event(change: FeedChange, row: Mapping[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "change": change, "order_hash": row["order_hash"], "kind": row["kind"], "data": data,
        "at": datetime.now(UTC),
    }  # fmt: skip


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
