"""The rules an order must pass to enter the book, and to stay open in it.

The book only lists orders that could be matched right now: a requester who picks one must
not waste a transaction on a signature that fails, a resource that changed hands, a volume
already consumed, or an owner who cannot pay. Each rule refuses with a `ProblemError` whose
`rule` names it; `order_state` applies the same rules to an order already in the book (after
a transfer, a withdrawal, a reorg) and says whether it is still open and why not.

Funds: a request order must be covered for its whole remaining volume at its max prices,
since a deal locks the price of every task it opens at once and requests are usually the
smallest order of a deal; a workerpool order must be covered for the stake of one task,
since pools offer far more capacity than one deal takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from decloud.market.book import AnyOrder, kind_of, resource_of
from decloud.market.chain import MarketChain
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
class Admitted:
    """An order that passed every rule, with what the checks learnt."""

    order: AnyOrder
    order_hash: bytes
    owner: str
    remaining: int
    block: int


@dataclass(frozen=True)
class OrderState:
    remaining: int
    status: OrderStatus
    dead_reason: str | None


def admit(chain: MarketChain, order: AnyOrder, signature: bytes) -> Admitted:
    """Check a new order against the chain; raises a 422 `ProblemError` naming the rule."""
    block = chain.head()
    _check_shape(order)
    order_hash = order.digest(chain.domain)
    owner = _owner(chain, order)
    _check_signature(chain, order, order_hash, owner, signature)
    remaining = order.volume - min(order.volume, chain.consumed(order_hash))
    if remaining == 0:
        raise refused(
            "volume.exhausted",
            f"order 0x{order_hash.hex()} has no remaining volume on-chain: it was fully "
            "matched or closed by its owner",
        )
    shortfall = funds_shortfall(chain, order, owner, remaining)
    if shortfall is not None:
        raise refused("funds.insufficient", shortfall)
    return Admitted(order, order_hash, owner, remaining, block)


def order_state(chain: MarketChain, order: AnyOrder, owner: str) -> OrderState:
    """Where an order in the book stands now. Exhausted volume is `filled` (a close is told
    apart by its event); otherwise `dead` while its owner lost the resource or the funds."""
    order_hash = order.digest(chain.domain)
    remaining = order.volume - min(order.volume, chain.consumed(order_hash))
    if remaining == 0:
        return OrderState(0, OrderStatus.FILLED, None)
    reason = _ownership_lost(chain, order, owner) or funds_shortfall(chain, order, owner, remaining)
    status = OrderStatus.OPEN if reason is None else OrderStatus.DEAD
    return OrderState(remaining, status, reason)


def funds_shortfall(chain: MarketChain, order: AnyOrder, owner: str, remaining: int) -> str | None:
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
    free = chain.free_balance(owner)
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


def _owner(chain: MarketChain, order: AnyOrder) -> str:
    """Who must have signed: the owner of the resource sold, or the requester (whose app
    and dataset must be registered, or the request could never match)."""
    kind = kind_of(order)
    resource = resource_of(order)
    if resource is not None:
        owner = chain.owner_of(kind, resource)
        if owner is None:
            raise refused("resource.unknown", f"no {kind} {resource} is registered")
        return owner
    assert isinstance(order, RequestOrder)
    _check_registered(chain, order)
    return order.requester


def _check_registered(chain: MarketChain, order: RequestOrder) -> None:
    if chain.owner_of(OrderKind.APP, order.app) is None:
        raise refused("resource.unknown", f"the request names app {order.app}, not registered")
    if int(order.dataset, 16) and chain.owner_of(OrderKind.DATASET, order.dataset) is None:
        raise refused(
            "resource.unknown", f"the request names dataset {order.dataset}, not registered"
        )


def _check_signature(
    chain: MarketChain, order: AnyOrder, order_hash: bytes, owner: str, signature: bytes
) -> None:
    """An EOA's signature is checked here; a contract's (ERC-1271) and a presign by the
    hub's own rule, on-chain."""
    if signature and not chain.is_contract(owner):
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
    if not chain.signature_valid(owner, order_hash, signature):
        what = "presigned on-chain" if not signature else "approved (ERC-1271)"
        raise refused(
            "signature.invalid",
            f"the order is not {what} by {owner}, who must sign it: {_owned(order, owner)}",
        )


def _ownership_lost(chain: MarketChain, order: AnyOrder, owner: str) -> str | None:
    resource = resource_of(order)
    if resource is None:
        return None
    current = chain.owner_of(kind_of(order), resource)
    if current == owner:
        return None
    return f"{owner}, who signed the order, no longer owns {kind_of(order)} {resource}"


def _owned(order: AnyOrder, owner: str) -> str:
    resource = resource_of(order)
    if resource is None:
        return f"the request names requester {owner}"
    return f"{kind_of(order)} {resource} is owned by {owner}"
