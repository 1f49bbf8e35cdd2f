"""The market SDK: publish, find and unpublish orders over the market's HTTP API.

A refusal raises `MarketError` carrying the market's rule and message, so a program can
react to `funds.insufficient` and a person reads what to do. `cheapest_compatible` finds the
orders a request can be matched with, the way `decloud app run` needs them, and when there
are none it says which constraint left nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx
from eth_account import Account
from pydantic import BaseModel, ValidationError

from decloud.market.book import ORDER_TYPES, ZERO_ADDRESS, AnyOrder, kind_of
from decloud.market.models import OrderKind
from decloud.market.schemas import (
    MAX_BATCH,
    MESSAGE_MODELS,
    MarketInfo,
    OrderPage,
    PublishedOrder,
    PublishedOrders,
    PublishOutcome,
    UnpublishAll,
    Unpublished,
    UnpublishOne,
)
from decloud.protocol.orders import (
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    RequestOrder,
    WorkerpoolOrder,
    sign_typed,
)
from decloud.protocol.tags import tag_union
from decloud.service.auth import sign_request

DEFAULT_URL = "http://127.0.0.1:8700"
M = TypeVar("M", bound=BaseModel)


class MarketError(Exception):
    """The market refused a request (`rule` names why) or could not be reached."""

    def __init__(self, detail: str, *, status: int | None = None, rule: str | None = None) -> None:
        super().__init__(detail if rule is None else f"{detail} [{rule}]")
        self.detail = detail
        self.status = status
        self.rule = rule


class NoCompatibleOrder(MarketError):
    """No open order can be matched with the request; the message says which constraint."""


@dataclass(frozen=True)
class Compatible:
    """The cheapest orders a request can be matched with, and what one task costs."""

    app: PublishedOrder
    workerpool: PublishedOrder
    dataset: PublishedOrder | None

    @property
    def task_price(self) -> int:
        prices = [self.app.price, self.workerpool.price]
        if self.dataset is not None:
            prices.append(self.dataset.price)
        return sum(int(price) for price in prices)

    def orders(self) -> tuple[AppOrder, WorkerpoolOrder, DatasetOrder | None]:
        """The signed orders as protocol values, ready for matchOrders."""
        app = AppOrder.from_message(self.app.order.model_dump())
        pool = WorkerpoolOrder.from_message(self.workerpool.order.model_dump())
        dataset = (
            None
            if self.dataset is None
            else DatasetOrder.from_message(self.dataset.order.model_dump())
        )
        return app, pool, dataset


class MarketClient:
    """One market, reached over HTTP."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        self._info: MarketInfo | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- reading -----------------------------------------------------------------------

    def info(self) -> MarketInfo:
        self._info = self._call("GET", "/v1/info", MarketInfo)
        return self._info

    def domain(self) -> Eip712Domain:
        """The EIP-712 domain this market's orders are signed in."""
        info = self._info or self.info()
        return Eip712Domain(chain_id=info.chain_id, verifying_contract=info.hub)

    def show(self, order_hash: str) -> PublishedOrder:
        return self._call("GET", f"/v1/orders/{order_hash}", PublishedOrder)

    def orderbook(self, kind: OrderKind, **filters: Any) -> OrderPage:
        """One page of a book; filters as in the API (`app=`, `min_trust=`, `limit=`, ...)."""
        params = {name: str(value) for name, value in filters.items() if value is not None}
        return self._call("GET", f"/v1/orderbook/{kind.value}", OrderPage, params=params)

    def iter_orderbook(self, kind: OrderKind, **filters: Any) -> Iterator[PublishedOrder]:
        """Every order of a book that passes the filters, page after page."""
        cursor = None
        while True:
            page = self.orderbook(kind, **filters, cursor=cursor)
            yield from page.orders
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # --- writing -----------------------------------------------------------------------

    def publish(self, order: AnyOrder, signature: bytes) -> PublishedOrder:
        """Publish an order signed elsewhere (b"" for one presigned on-chain)."""
        body = self._publish_body(order, signature)
        return self._call("POST", "/v1/orders", PublishedOrder, json=body)

    def publish_many(
        self, signed: Sequence[tuple[AnyOrder, bytes]]
    ) -> list[PublishedOrder | MarketError]:
        """Publish orders and their signatures through the batch endpoint, `MAX_BATCH` per
        request. Each order is judged alone: one outcome per order, in the order given,
        the published order or the market's refusal of it."""
        outcomes: list[PublishedOrder | MarketError] = []
        for start in range(0, len(signed), MAX_BATCH):
            bodies = [self._publish_body(*pair) for pair in signed[start : start + MAX_BATCH]]
            answer = self._call(
                "POST", "/v1/orders/batch", PublishedOrders, json={"orders": bodies}
            )
            outcomes.extend(_outcome(outcome) for outcome in answer.outcomes)
        return outcomes

    def sign_and_publish(self, order: AnyOrder, private_key: str | bytes) -> PublishedOrder:
        return self.publish(order, sign_typed(order, self.domain(), private_key))

    def unpublish(self, order_hash: str, private_key: str | bytes) -> list[str]:
        """Remove one of the key's orders from the book; the hashes removed."""
        request = UnpublishOne(order_hash=order_hash)
        return self._signed("/v1/orders/unpublish", "unpublish", request, private_key)

    def unpublish_all(self, private_key: str | bytes, kind: OrderKind | None = None) -> list[str]:
        """Remove every order of the key (of one kind, if given) from the book."""
        request = UnpublishAll(kind=kind)
        return self._signed("/v1/orders/unpublish-all", "unpublish-all", request, private_key)

    # --- finding a match ---------------------------------------------------------------

    def cheapest_compatible(self, request: RequestOrder) -> Compatible:
        """The cheapest open app, dataset and workerpool orders `request` can be matched
        with: same app and dataset, prices within its max prices, restrictions that allow
        it, enough trust, the right category and every tag bit asked for."""
        names = {"requester": request.requester}
        if request.workerpool != ZERO_ADDRESS:
            names["workerpool"] = request.workerpool
        app = self._cheapest(
            OrderKind.APP, request.appmaxprice,
            {"app": request.app, "dataset": request.dataset, **names}, f"app {request.app}",
            request.volume,
        )  # fmt: skip
        dataset = None
        if request.dataset != ZERO_ADDRESS:
            dataset = self._cheapest(
                OrderKind.DATASET, request.datasetmaxprice,
                {"dataset": request.dataset, "app": request.app, **names},
                f"dataset {request.dataset}", request.volume,
            )  # fmt: skip
        asked = [request.tag, bytes.fromhex(app.order.tag[2:])]
        if dataset is not None:
            asked.append(bytes.fromhex(dataset.order.tag[2:]))
        pool_filters = {
            "app": request.app, "dataset": request.dataset, **names,
            "category": request.category, "min_trust": request.trust,
            "min_tag": "0x" + tag_union(*asked).hex(),
        }  # fmt: skip
        workerpool = self._cheapest(
            OrderKind.WORKERPOOL, request.workerpoolmaxprice, pool_filters,
            f"workerpool orders of category {request.category} with trust >= {request.trust} "
            "and the tags asked", request.volume,
        )  # fmt: skip
        return Compatible(app=app, workerpool=workerpool, dataset=dataset)

    def _cheapest(
        self, kind: OrderKind, max_price: int, filters: Mapping[str, Any], what: str, volume: int
    ) -> PublishedOrder:
        """The cheapest order with `volume` tasks left at least: matchOrders makes a deal of
        the smallest remaining volume, so an order with fewer would shrink the deal."""
        page = self.orderbook(kind, **filters, max_price=max_price, min_volume=volume, limit=1)
        if page.orders:
            return page.orders[0]
        if volume > 1 and self.orderbook(kind, **filters, max_price=max_price, limit=1).orders:
            raise NoCompatibleOrder(
                f"no {kind} order for {what} has {volume} tasks left within the max price: "
                "ask for fewer tasks (--volume)"
            )
        without_price = self.orderbook(kind, **filters, min_volume=volume, limit=1)
        if without_price.orders:
            raise NoCompatibleOrder(
                f"the cheapest {kind} order for {what} asks {without_price.orders[0].price} "
                f"per task, above the request's max price {max_price}"
            )
        raise NoCompatibleOrder(
            f"no open {kind} order for {what} allows this request "
            f"({', '.join(f'{k}={v}' for k, v in filters.items())})"
        )

    # --- plumbing ----------------------------------------------------------------------

    def _publish_body(self, order: AnyOrder, signature: bytes) -> dict[str, Any]:
        return {
            "kind": kind_of(order).value,
            "chain_id": self.domain().chain_id,
            "order": order.to_message(),
            "signature": "0x" + signature.hex(),
        }

    def _signed(
        self, path: str, action: str, request: BaseModel, private_key: str | bytes
    ) -> list[str]:
        auth = sign_request(
            request,
            service="market",
            action=action,
            domain=self.domain(),
            private_key=private_key,
            signer=str(Account.from_key(private_key).address),
        )
        body = {"request": request.model_dump(mode="json"), "auth": auth.model_dump()}
        return self._call("POST", path, Unpublished, json=body).removed

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise MarketError(
                f"the market at {self._http.base_url} is unreachable: {error}"
            ) from error
        if answer.status_code >= 400:
            raise _refusal(answer)
        try:
            return model.model_validate(answer.json())
        except (ValidationError, ValueError) as error:
            raise MarketError(
                f"unexpected answer from the market to {method} {path}: {error}"
            ) from error


def _refusal(answer: httpx.Response) -> MarketError:
    try:
        problem = answer.json()
        return MarketError(
            str(problem["detail"]), status=answer.status_code, rule=str(problem["rule"])
        )
    except (ValueError, KeyError, TypeError):
        return MarketError(f"the market answered {answer.status_code}", status=answer.status_code)


def _outcome(outcome: PublishOutcome) -> PublishedOrder | MarketError:
    if outcome.published is not None:
        return outcome.published
    if outcome.problem is None:
        return MarketError("the market gave no outcome for this order")
    problem = outcome.problem
    return MarketError(problem.detail, status=problem.status, rule=problem.rule)


def order_from_json(data: Mapping[str, Any]) -> AnyOrder:
    """An order from its JSON file form: {"kind": "app", "order": {...message...}}."""
    kind = OrderKind(data["kind"])
    message = MESSAGE_MODELS[kind].model_validate(data["order"])
    return ORDER_TYPES[kind].from_message(message.model_dump())
