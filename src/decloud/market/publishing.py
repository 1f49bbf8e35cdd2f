"""From orders as sent to rows in the book, or the rule each one broke.

One path serves a single publish and a batch, so a batch can never admit an order that a
single publish would refuse. Each stage takes the orders still in and either passes each one
on or refuses it; the first refusal is an order's answer. The stages, in order: the chain id
of the signature's domain, the message's fields, not already in the book (nor earlier in the
batch), the chain's rules (`admission`), the owner's open-order limit, and the insert. Each
stage handles the whole batch at once: one SQL query, one or two JSON-RPC round trips.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from decloud.market import store
from decloud.market.admission import Admitted, Submission, admit_all, refused
from decloud.market.book import ORDER_TYPES, AnyOrder
from decloud.market.chain import MarketChain
from decloud.market.hashing import order_digest
from decloud.market.models import OrderKind
from decloud.market.schemas import (
    PublishAppOrder,
    PublishDatasetOrder,
    PublishedOrder,
    PublishRequestOrder,
    PublishWorkerpoolOrder,
)
from decloud.service.problems import ProblemError

_FROM_JSON: dict[str, Callable[[str], Any]] = {
    "address": str,
    "uint256": int,
    "bytes32": lambda value: bytes.fromhex(value[2:]),
    "string": str,
}
"""How the schema's JSON form of each ABI type becomes the order's Python value."""

SentOrder = PublishAppOrder | PublishDatasetOrder | PublishWorkerpoolOrder | PublishRequestOrder
In = TypeVar("In")
Out = TypeVar("Out")


def publish_all(
    session: Session, chain: MarketChain, max_open_per_owner: int, sent: Sequence[SentOrder]
) -> list[PublishedOrder | ProblemError]:
    """Publish each order that passes every rule; for each, the order as published or its
    refusal."""
    submissions = [_submission(chain, body) for body in sent]
    new = _stage(submissions, lambda batch: _not_published(session, batch))
    admitted = _stage(new, lambda batch: admit_all(chain, batch))
    allowed = _stage(admitted, lambda batch: _within_limit(session, max_open_per_owner, batch))
    return _stage(allowed, lambda batch: store.insert_orders(session, batch))


def _stage(
    items: Sequence[In | ProblemError],
    run: Callable[[list[In]], Sequence[Out | ProblemError]],
) -> list[Out | ProblemError]:
    """Run the next stage on the orders still in, keeping every order in its place."""
    still_in = [item for item in items if not isinstance(item, ProblemError)]
    results = iter(run(still_in) if still_in else [])
    return [item if isinstance(item, ProblemError) else next(results) for item in items]


def _submission(chain: MarketChain, sent: SentOrder) -> Submission | ProblemError:
    if sent.chain_id != chain.domain.chain_id:
        return refused(
            "chain.mismatch",
            f"this market serves chain {chain.domain.chain_id}; the order is signed "
            f"for chain {sent.chain_id}",
        )
    try:
        order = _order(OrderKind(sent.kind), sent.order.model_dump())
    except ValueError as error:
        return refused("order.invalid", str(error))
    signature = bytes.fromhex(sent.signature.removeprefix("0x"))
    return Submission(order, order_digest(order, chain.domain_separator), signature)


def _order(kind: OrderKind, message: dict[str, str]) -> AnyOrder:
    """The order a message stands for. The schema has already checked the form of every
    field and checksummed every address, so the values are only converted; the order's own
    checks still run. (`from_message` would parse and checksum each address twice more: a
    third of the time a publish takes.)"""
    order_type = ORDER_TYPES[kind]
    return order_type(**{
        name: _FROM_JSON[abi_type](message[name]) for name, abi_type in order_type.FIELDS
    })  # fmt: skip


def _not_published(
    session: Session, submissions: list[Submission]
) -> list[Submission | ProblemError]:
    """Refuse at once, before any chain read, an order already in the book or sent twice."""
    hashes = ["0x" + submission.order_hash.hex() for submission in submissions]
    seen = store.already_published(session, hashes)
    outcomes: list[Submission | ProblemError] = []
    for submission, order_hash in zip(submissions, hashes, strict=True):
        outcomes.append(store.duplicate(order_hash) if order_hash in seen else submission)
        seen.add(order_hash)
    return outcomes


def _within_limit(
    session: Session, limit: int, admitted: list[Admitted]
) -> list[Admitted | ProblemError]:
    """Keep each owner's open orders within `limit`, counting those admitted before it in
    the batch."""
    counts = Counter(store.open_counts(session, {order.owner for order in admitted}))
    outcomes: list[Admitted | ProblemError] = []
    for order in admitted:
        if counts[order.owner] >= limit:
            outcomes.append(
                refused(
                    "limit.open_orders",
                    f"{order.owner} already has {limit} open orders, the most this market "
                    "keeps per owner: unpublish some first",
                )
            )
            continue
        counts[order.owner] += 1
        outcomes.append(order)
    return outcomes
