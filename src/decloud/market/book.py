"""How an order sits in the book: its price, sort rank, the names it carries and its owner.

Every order names an app, a dataset, a workerpool and a requester. Some names are exact
(the app an app order sells, the app and dataset a request runs, its requester); the others
are restrictions, where the zero address means anyone. A filter `workerpool=X` therefore
asks for orders that name X exactly where the name is exact, and X or anyone where it is a
restriction: the orders X can be matched with (restrictions to a group contract are not
resolved here; such orders show only when that group is asked for by its address).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from decloud.market.models import OrderKind
from decloud.protocol.orders import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder

AnyOrder = AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
UINT256_MAX = 2**256 - 1
TAG_FILTER_BITS = 63
"""Tag bits a filter can name: they fit a signed 64-bit column on every database."""
TAG_FILTER_MASK = (1 << TAG_FILTER_BITS) - 1

ORDER_TYPES: dict[OrderKind, type[AnyOrder]] = {
    OrderKind.APP: AppOrder,
    OrderKind.DATASET: DatasetOrder,
    OrderKind.WORKERPOOL: WorkerpoolOrder,
    OrderKind.REQUEST: RequestOrder,
}
NAMES = ("app", "dataset", "workerpool", "requester")
EXACT_NAMES: dict[OrderKind, frozenset[str]] = {
    OrderKind.APP: frozenset({"app"}),
    OrderKind.DATASET: frozenset({"dataset"}),
    OrderKind.WORKERPOOL: frozenset({"workerpool"}),
    OrderKind.REQUEST: frozenset({"app", "dataset", "requester"}),
}


@dataclass(frozen=True)
class BookEntry:
    """The columns the book derives from an order."""

    price: int
    rank: int
    app: str
    dataset: str
    workerpool: str
    requester: str
    category: int | None
    trust: int | None
    tag: bytes

    @property
    def tag_low_bits(self) -> int:
        return int.from_bytes(self.tag, "big") & TAG_FILTER_MASK

    @property
    def tag_high_bits(self) -> bool:
        return int.from_bytes(self.tag, "big") >> TAG_FILTER_BITS != 0


def kind_of(order: AnyOrder) -> OrderKind:
    match order:
        case AppOrder():
            return OrderKind.APP
        case DatasetOrder():
            return OrderKind.DATASET
        case WorkerpoolOrder():
            return OrderKind.WORKERPOOL
        case RequestOrder():
            return OrderKind.REQUEST


def book_entry(order: AnyOrder) -> BookEntry:
    match order:
        case AppOrder():
            return _offer(
                order.appprice, order.tag, order.app, order.datasetrestrict,
                order.workerpoolrestrict, order.requesterrestrict,
            )  # fmt: skip
        case DatasetOrder():
            return _offer(
                order.datasetprice, order.tag, order.apprestrict, order.dataset,
                order.workerpoolrestrict, order.requesterrestrict,
            )  # fmt: skip
        case WorkerpoolOrder():
            offer = _offer(
                order.workerpoolprice, order.tag, order.apprestrict, order.datasetrestrict,
                order.workerpool, order.requesterrestrict,
            )  # fmt: skip
            return replace(offer, category=order.category, trust=order.trust)
        case RequestOrder():
            return BookEntry(
                price=order.workerpoolmaxprice,
                rank=UINT256_MAX - order.workerpoolmaxprice,
                app=order.app,
                dataset=order.dataset,
                workerpool=order.workerpool,
                requester=order.requester,
                category=order.category,
                trust=order.trust,
                tag=order.tag,
            )


def _offer(
    price: int, tag: bytes, app: str, dataset: str, workerpool: str, requester: str
) -> BookEntry:
    return BookEntry(price, price, app, dataset, workerpool, requester, None, None, tag)


def resource_of(order: AnyOrder) -> str | None:
    """The registered resource whose owner signs the order (None for a request: its
    requester signs it)."""
    match order:
        case AppOrder():
            return order.app
        case DatasetOrder():
            return order.dataset
        case WorkerpoolOrder():
            return order.workerpool
        case RequestOrder():
            return None
