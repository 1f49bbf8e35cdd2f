"""The rules an order must pass to enter the book, and to stay open in it.

The book only lists orders that could be matched right now: a requester who picks one must
not waste a transaction on a signature that fails, a resource that changed hands, a volume
already consumed, or an owner who cannot pay. Each rule refuses with a `ProblemError` whose
`rule` names it; `order_state` applies the same rules to an order already in the book (after
a transfer, a withdrawal, a reorg) and says whether it is still open and why not.

All checks of a batch of orders read the chain as of one block (`ChainView`), in two
batched round trips: first what each order names (its resource's owner, or the app and
dataset of a request, and its consumed volume), then what each owner holds (code, balance).
The rules then run on those answers one order at a time, in the order below.

Funds: a request order must be covered for its whole remaining volume at its max prices,
since a deal locks the price of every task it opens at once and requests are usually the
smallest order of a deal; a workerpool order must be covered for the stake of one task,
since pools offer far more capacity than one deal takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from decloud.market.book import AnyOrder, kind_of, resource_of
from decloud.market.chain import ChainReads, ChainView, MarketChain, Read
from decloud.market.models import OrderKind, OrderStatus
from decloud.protocol.orders import RequestOrder, SignatureError, WorkerpoolOrder, recover_signer
from decloud.service.problems import ProblemError

POOL_STAKE_RATIO = 30
"""Percent of the workerpool price its owner stakes per task (the hub's POOL_STAKE_RATIO)."""
MAX_PARAMS_BYTES = 4096
"""Longest request params the marketplace accepts (MAX_PARAMS in Marketplace.vy)."""


def refused(rule: str, detail: str) -> ProblemError:
    return ProblemError(422, rule, detail)


@dataclass(frozen=True)
class Submission:
    """An order as published: the order, its digest in the market's domain, its signature
    (empty for an order presigned on-chain)."""

    order: AnyOrder
    order_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class Admitted:
    """An order that passed every rule, with what the checks learnt."""

    order: AnyOrder
    order_hash: bytes
    owner: str
    remaining: int
    block: int
    signature: bytes


@dataclass(frozen=True)
class OrderState:
    remaining: int
    status: OrderStatus
    dead_reason: str | None


def admit_all(
    chain: MarketChain, submissions: Sequence[Submission]
) -> list[Admitted | ProblemError]:
    """Check new orders against the chain as of its head: for each, in order, the order
    admitted or the 422 `ProblemError` that refuses it."""
    view = chain.view()
    view.prefetch(read for s in submissions for read in _named_reads(view.reads, s))
    owners = {owner for s in submissions if (owner := _known_owner(view, s.order)) is not None}
    view.prefetch(read for owner in owners for read in _account_reads(view.reads, owner))
    return [_outcome(view, submission) for submission in submissions]


def _named_reads(reads: ChainReads, submission: Submission) -> list[Read]:
    """What can be read before the owner is known: the consumed volume, and the owner of the
    resource sold, or the registrations a request needs and its requester's account."""
    order = submission.order
    named = [reads.consumed(submission.order_hash)]
    resource = resource_of(order)
    if resource is not None:
        return [*named, reads.owner(kind_of(order), resource)]
    assert isinstance(order, RequestOrder)
    named += [
        reads.owner(OrderKind.APP, order.app),
        *_account_reads(reads, order.requester),
    ]
    if int(order.dataset, 16):
        named.append(reads.owner(OrderKind.DATASET, order.dataset))
    return named


def _account_reads(reads: ChainReads, account: str) -> tuple[Read, Read]:
    """Whether the account signs as a contract (ERC-1271), and what it can pay or stake."""
    return reads.is_contract(account), reads.free_balance(account)


def _known_owner(view: ChainView, order: AnyOrder) -> str | None:
    try:
        return _owner(view, order)
    except ProblemError:
        return None


def _outcome(view: ChainView, submission: Submission) -> Admitted | ProblemError:
    try:
        return _admit(view, submission)
    except ProblemError as refusal:
        return refusal


def _admit(view: ChainView, submission: Submission) -> Admitted:
    order, order_hash = submission.order, submission.order_hash
    _check_shape(order)
    owner = _owner(view, order)
    _check_signature(view, order, order_hash, owner, submission.signature)
    remaining = order.volume - min(order.volume, view.consumed(order_hash))
    if remaining == 0:
        raise refused(
            "volume.exhausted",
            f"order 0x{order_hash.hex()} has no remaining volume on-chain: it was fully "
            "matched or closed by its owner",
        )
    shortfall = funds_shortfall(view, order, owner, remaining)
    if shortfall is not None:
        raise refused("funds.insufficient", shortfall)
    return Admitted(order, order_hash, owner, remaining, view.number, submission.signature)


def state_reads(reads: ChainReads, order: AnyOrder, order_hash: bytes, owner: str) -> list[Read]:
    """What `order_state` reads, to fetch for many orders in one batch."""
    resource = resource_of(order)
    ownership = [] if resource is None else [reads.owner(kind_of(order), resource)]
    return [reads.consumed(order_hash), *ownership, reads.free_balance(owner)]


def order_state(view: ChainView, order: AnyOrder, order_hash: bytes, owner: str) -> OrderState:
    """Where an order in the book stands now. Exhausted volume is `filled` (a close is told
    apart by its event); otherwise `dead` while its owner lost the resource or the funds."""
    remaining = order.volume - min(order.volume, view.consumed(order_hash))
    if remaining == 0:
        return OrderState(0, OrderStatus.FILLED, None)
    reason = _ownership_lost(view, order, owner) or funds_shortfall(view, order, owner, remaining)
    status = OrderStatus.OPEN if reason is None else OrderStatus.DEAD
    return OrderState(remaining, status, reason)


def funds_shortfall(view: ChainView, order: AnyOrder, owner: str, remaining: int) -> str | None:
    """Why the owner's free balance does not cover the order, or None when it does."""
    match order:
        case RequestOrder():
            task_cost = order.appmaxprice + order.datasetmaxprice + order.workerpoolmaxprice
            needed, what = task_cost * remaining, f"{remaining} task(s) at its max prices"
        case WorkerpoolOrder():
            needed = order.workerpoolprice * POOL_STAKE_RATIO // 100
            what = "the stake of one task"
        case _:
            return None
    free = view.free_balance(owner)
    if free >= needed:
        return None
    return (
        f"the free balance of {owner} in the hub ({free}) is below {needed}, {what}: deposit more"
    )


def _check_shape(order: AnyOrder) -> None:
    if order.volume == 0:
        raise refused("order.zero_volume", "an order with volume 0 can never be matched")
    if isinstance(order, RequestOrder) and len(order.params.encode()) > MAX_PARAMS_BYTES:
        raise refused(
            "order.params_too_long",
            f"request params take {len(order.params.encode())} bytes; the marketplace "
            f"accepts at most {MAX_PARAMS_BYTES}",
        )


def _owner(view: ChainView, order: AnyOrder) -> str:
    """Who must have signed: the owner of the resource sold, or the requester (whose app
    and dataset must be registered, or the request could never match)."""
    kind = kind_of(order)
    resource = resource_of(order)
    if resource is not None:
        owner = view.owner_of(kind, resource)
        if owner is None:
            raise refused("resource.unknown", f"no {kind} {resource} is registered")
        return owner
    assert isinstance(order, RequestOrder)
    _check_registered(view, order)
    return order.requester


def _check_registered(view: ChainView, order: RequestOrder) -> None:
    if view.owner_of(OrderKind.APP, order.app) is None:
        raise refused("resource.unknown", f"the request names app {order.app}, not registered")
    if int(order.dataset, 16) and view.owner_of(OrderKind.DATASET, order.dataset) is None:
        raise refused(
            "resource.unknown", f"the request names dataset {order.dataset}, not registered"
        )


def _check_signature(
    view: ChainView, order: AnyOrder, order_hash: bytes, owner: str, signature: bytes
) -> None:
    """An EOA's signature is checked here; a contract's (ERC-1271) and a presign by the
    hub's own rule, on-chain."""
    if signature and not view.is_contract(owner):
        try:
            signer = recover_signer(order_hash, signature)
        except SignatureError as error:
            raise refused(
                "signature.invalid", f"the order signature is invalid: {error}"
            ) from error
        if signer != owner:
            raise refused(
                "signature.not_owner",
                f"the order is signed by {signer}, but {_owned(order, owner)}",
            )
        return
    if not view.signature_valid(owner, order_hash, signature):
        what = "presigned on-chain" if not signature else "approved (ERC-1271)"
        raise refused(
            "signature.invalid",
            f"the order is not {what} by {owner}, who must sign it: {_owned(order, owner)}",
        )


def _ownership_lost(view: ChainView, order: AnyOrder, owner: str) -> str | None:
    resource = resource_of(order)
    if resource is None:
        return None
    current = view.owner_of(kind_of(order), resource)
    if current == owner:
        return None
    return f"{owner}, who signed the order, no longer owns {kind_of(order)} {resource}"


def _owned(order: AnyOrder, owner: str) -> str:
    resource = resource_of(order)
    if resource is None:
        return f"the request names requester {owner}"
    return f"{kind_of(order)} {resource} is owned by {owner}"
