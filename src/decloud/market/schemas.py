"""Requests and answers of the market's HTTP API, shared by the service and the SDK.

The four order models mirror the EIP-712 structs of `decloud.protocol.orders` field for field
(a test holds them equal): the JSON an order is signed as is the JSON it is published as.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from decloud.market.models import FeedChange, OrderKind, OrderStatus
from decloud.service.auth import RequestAuth
from decloud.service.problems import Problem
from decloud.service.types import AddressStr, Bytes32Str, SignatureStr, Uint256Str

MAX_PAGE = 100
MAX_BATCH = 50
"""Most orders one batch publish may carry (the body must also fit `max_body_bytes`)."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppOrderMessage(_Message):
    app: AddressStr
    appprice: Uint256Str
    volume: Uint256Str
    tag: Bytes32Str
    datasetrestrict: AddressStr
    workerpoolrestrict: AddressStr
    requesterrestrict: AddressStr
    salt: Bytes32Str


class DatasetOrderMessage(_Message):
    dataset: AddressStr
    datasetprice: Uint256Str
    volume: Uint256Str
    tag: Bytes32Str
    apprestrict: AddressStr
    workerpoolrestrict: AddressStr
    requesterrestrict: AddressStr
    salt: Bytes32Str


class WorkerpoolOrderMessage(_Message):
    workerpool: AddressStr
    workerpoolprice: Uint256Str
    volume: Uint256Str
    tag: Bytes32Str
    category: Uint256Str
    trust: Uint256Str
    apprestrict: AddressStr
    datasetrestrict: AddressStr
    requesterrestrict: AddressStr
    salt: Bytes32Str


class RequestOrderMessage(_Message):
    app: AddressStr
    appmaxprice: Uint256Str
    dataset: AddressStr
    datasetmaxprice: Uint256Str
    workerpool: AddressStr
    workerpoolmaxprice: Uint256Str
    requester: AddressStr
    volume: Uint256Str
    tag: Bytes32Str
    category: Uint256Str
    trust: Uint256Str
    beneficiary: AddressStr
    callback: AddressStr
    params: str = Field(max_length=4096)
    salt: Bytes32Str


OrderMessage = AppOrderMessage | DatasetOrderMessage | WorkerpoolOrderMessage | RequestOrderMessage
MESSAGE_MODELS: dict[OrderKind, type[OrderMessage]] = {
    OrderKind.APP: AppOrderMessage,
    OrderKind.DATASET: DatasetOrderMessage,
    OrderKind.WORKERPOOL: WorkerpoolOrderMessage,
    OrderKind.REQUEST: RequestOrderMessage,
}


class _Publish(_Message):
    chain_id: int = Field(ge=0, description="Chain of the EIP-712 domain the order is signed in")
    signature: SignatureStr


class PublishAppOrder(_Publish):
    kind: Literal["app"]
    order: AppOrderMessage


class PublishDatasetOrder(_Publish):
    kind: Literal["dataset"]
    order: DatasetOrderMessage


class PublishWorkerpoolOrder(_Publish):
    kind: Literal["workerpool"]
    order: WorkerpoolOrderMessage


class PublishRequestOrder(_Publish):
    kind: Literal["request"]
    order: RequestOrderMessage


PublishOrder = Annotated[
    PublishAppOrder | PublishDatasetOrder | PublishWorkerpoolOrder | PublishRequestOrder,
    Field(discriminator="kind"),
]


class PublishOrders(_Message):
    orders: list[PublishOrder] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} signed orders"
    )


class PublishedOrder(BaseModel):
    """An order in the book, with its live state."""

    order_hash: Bytes32Str
    kind: OrderKind
    owner: AddressStr
    status: OrderStatus
    dead_reason: str | None = Field(description="Why a dead order cannot be matched now")
    volume: Uint256Str
    remaining: Uint256Str
    price: Uint256Str = Field(
        description="Price asked (app, dataset, workerpool), or workerpool max price (request)"
    )
    published_at: datetime
    order: OrderMessage
    signature: str = Field(description="0x-hex; 0x alone for an order presigned on-chain")


class PublishOutcome(BaseModel):
    """What became of one order of a batch: published, or refused with the problem that
    publishing it alone would have answered."""

    published: PublishedOrder | None = None
    problem: Problem | None = None


class PublishedOrders(BaseModel):
    outcomes: list[PublishOutcome] = Field(description="One per order, in the order sent")


class OrderPage(BaseModel):
    orders: list[PublishedOrder]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class BookQuery(BaseModel):
    """Filters every book has. A name filter (app, dataset, workerpool, requester) keeps the
    orders that name it exactly, or, where the order type holds a restriction there, that
    allow it (restriction zero or equal)."""

    model_config = ConfigDict(extra="forbid")

    owner: AddressStr | None = None
    app: AddressStr | None = None
    dataset: AddressStr | None = None
    workerpool: AddressStr | None = None
    requester: AddressStr | None = None
    min_tag: Bytes32Str | None = Field(
        default=None, description="Keep orders whose tag has these bits"
    )
    max_tag: Bytes32Str | None = Field(
        None, description="Keep orders whose tag has no bit outside these"
    )
    min_volume: Uint256Str | None = Field(default=None, description="Minimum remaining volume")
    status: OrderStatus = OrderStatus.OPEN
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=200, description="From the previous page")


class OfferQuery(BookQuery):
    max_price: Uint256Str | None = None


class _CategoryTrust(BaseModel):
    category: Uint256Str | None = None
    min_trust: Uint256Str | None = None
    max_trust: Uint256Str | None = None


class WorkerpoolQuery(OfferQuery, _CategoryTrust):
    pass


class RequestQuery(BookQuery, _CategoryTrust):
    min_price: Uint256Str | None = Field(default=None, description="Minimum workerpool max price")


class UnpublishOne(_Message):
    order_hash: Bytes32Str


class UnpublishAll(_Message):
    kind: OrderKind | None = Field(default=None, description="Only orders of this kind; null: all")


class SignedUnpublishOne(_Message):
    request: UnpublishOne
    auth: RequestAuth


class SignedUnpublishAll(_Message):
    request: UnpublishAll
    auth: RequestAuth


class Unpublished(BaseModel):
    removed: list[Bytes32Str]


class MarketLimits(BaseModel):
    max_open_orders_per_owner: int
    max_page: int
    max_body_bytes: int


class MarketInfo(BaseModel):
    """What a client needs to sign for this market: its chain and hub (the EIP-712 domain)."""

    chain_id: int
    hub: AddressStr
    marketplace: AddressStr
    synced_block: int | None = Field(description="Last block the chain sync processed")
    limits: MarketLimits


class FeedEvent(BaseModel):
    """One change of the book, as sent on the live feed (SSE `data:`)."""

    seq: int
    change: FeedChange
    order_hash: Bytes32Str
    kind: OrderKind
    data: dict[str, Any] = Field(
        description="The order (published), its new state (updated), nothing (removed)"
    )
