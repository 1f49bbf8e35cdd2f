"""Buying one execution of an app: the quote, the match, the app's logs and the result.

A quote is the request order the wallet is about to sign and the app, dataset and
workerpool orders it will be matched with, with their prices. The orders come from one of
three places, in this order of preference:

- signed order files (`decloud order sign` writes them), when some are given; a kind they
  lack is signed on the spot if the wallet owns that resource;
- the market of the config (`[services] market`): the cheapest open orders compatible with
  the request; when there are none, the constraint that left nothing is named (no order at
  all, a restriction, the category, the trust, a tag, the price);
- without a market, orders the wallet signs itself, for resources it owns (a developer
  running its own app on its own workerpool).

The request asks exactly the prices of the orders chosen, so what is locked is what the
quote said. The result of a completed task is read from the chain (the link the scheduler
finalized with, the digest the winners revealed), downloaded from the result store by CID
and accepted only if its canonical digest is the revealed one.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_utils.address import to_checksum_address

from decloud.chain.hub import MatchedDeal
from decloud.market.book import ZERO_ADDRESS, AnyOrder, kind_of
from decloud.market.client import MarketClient, MarketError, NoCompatibleOrder, order_from_json
from decloud.market.models import OrderKind
from decloud.market.schemas import PublishedOrder
from decloud.protocol.hub import TASK_COMPLETED
from decloud.protocol.orders import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder
from decloud.protocol.tags import NO_TAG, tag_covers, tag_union
from decloud.scheduler.api import SERVICE_NAME, TASK_LOGS
from decloud.scheduler.schemas import LogsRequest, TaskLogs
from decloud.sdk.config import ClientConfig
from decloud.sdk.connection import Connection, Transaction
from decloud.sdk.errors import (
    ConfigError,
    DecloudError,
    InsufficientFunds,
    NotOwner,
    OrderFileError,
    Refused,
    UnknownResource,
    chain_errors,
)
from decloud.sdk.orders import Orders, OrderTerms
from decloud.sdk.status import CHAIN_STATUS
from decloud.sdk.values import parse_address, parse_bytes32, parse_tag
from decloud.service.auth import sign_request
from decloud.storage.cid import RESULT_LINK_PREFIX
from decloud.storage.client import CorruptResult, StorageClient, StorageError

NO_LIMIT = 2**256 - 1
"""The max price searched with when the requester sets none."""
MAX_OFFERS_READ = 500
"""Offers read to explain why none fits: enough for any book a person reads."""
SOURCE_MARKET = "market"
SOURCE_SELF = "self-signed"
_ORDER_ADVICE = (
    "ask its owner to publish one, or give an order it signed with --order FILE "
    "(`decloud order init|sign` write one)"
)


class NoMatchingOrder(DecloudError):
    """No order compatible with the request: the message names the constraint that failed."""


class TaskNotCompleted(DecloudError):
    """The task has no result yet (or never will): the message says its state."""


class ResultMismatch(DecloudError):
    """The archive served for a task is not the result the chain agreed on; nothing was kept."""


@dataclass(frozen=True)
class ChosenOrder:
    """A signed order the quote uses, and where it came from (`market`, `self-signed`, or
    `file <path>`)."""

    order: AppOrder | DatasetOrder | WorkerpoolOrder
    signature: bytes
    source: str

    @property
    def kind(self) -> OrderKind:
        return kind_of(self.order)

    @property
    def resource(self) -> str:
        match self.order:
            case AppOrder():
                return self.order.app
            case DatasetOrder():
                return self.order.dataset
            case WorkerpoolOrder():
                return self.order.workerpool

    @property
    def price(self) -> int:
        match self.order:
            case AppOrder():
                return self.order.appprice
            case DatasetOrder():
                return self.order.datasetprice
            case WorkerpoolOrder():
                return self.order.workerpoolprice

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "resource": self.resource,
            "price": str(self.price),
            "source": self.source,
            "order": self.order.to_message(),
            "signature": "0x" + self.signature.hex(),
        }


@dataclass(frozen=True)
class Quote:
    """What one run costs: the request to sign, the orders it is matched with, the price."""

    request: RequestOrder
    app: ChosenOrder
    workerpool: ChosenOrder
    dataset: ChosenOrder | None

    @property
    def orders(self) -> list[ChosenOrder]:
        return [self.app, *([self.dataset] if self.dataset else []), self.workerpool]

    @property
    def task_price(self) -> int:
        """Price of one task: app + dataset + workerpool."""
        return sum(order.price for order in self.orders)

    @property
    def volume(self) -> int:
        return self.request.volume

    @property
    def total(self) -> int:
        """What matching locks in the requester's hub account: every task of the volume."""
        return self.task_price * self.volume

    def to_json(self) -> dict[str, Any]:
        """The request's terms, each order chosen (price, source), and the prices."""
        request = self.request
        return {
            "request": {
                "app": request.app,
                "dataset": None if self.dataset is None else request.dataset,
                "workerpool": None if request.workerpool == ZERO_ADDRESS else request.workerpool,
                "params": request.params,
                "category": request.category,
                "trust": request.trust,
                "tag": "0x" + request.tag.hex(),
                "volume": self.volume,
            },
            "app": self.app.to_json(),
            "dataset": None if self.dataset is None else self.dataset.to_json(),
            "workerpool": self.workerpool.to_json(),
            "task_price": str(self.task_price),
            "total": str(self.total),
        }


@dataclass(frozen=True)
class RunStarted:
    """The deal matchOrders made and its tasks (one per unit of volume), as the 0x-hex ids
    the other calls take."""

    dealid: str
    taskids: list[str]
    transaction: Transaction

    @classmethod
    def of(cls, deal: MatchedDeal) -> RunStarted:
        taskids = ["0x" + deal.task_id(index).hex() for index in deal.deal.task_indexes()]
        return cls("0x" + deal.dealid.hex(), taskids, Transaction.of(deal.receipt))

    @property
    def gas_used(self) -> int:
        return self.transaction.gas_used

    def to_json(self) -> dict[str, Any]:
        return {
            "dealid": self.dealid,
            "taskids": self.taskids,
            "transaction": self.transaction.to_json(),
        }


@dataclass(frozen=True)
class ReplicateLogs:
    """The head of the app's output streams in one replicate, as the worker sent them; the
    totals count every byte the app wrote."""

    worker: str
    stdout: bytes
    stderr: bytes
    stdout_total_bytes: int
    stderr_total_bytes: int

    @property
    def stdout_truncated(self) -> bool:
        return self.stdout_total_bytes > len(self.stdout)

    @property
    def stderr_truncated(self) -> bool:
        return self.stderr_total_bytes > len(self.stderr)

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "stdout": self.stdout.decode(errors="replace"),
            "stderr": self.stderr.decode(errors="replace"),
            "stdout_total_bytes": self.stdout_total_bytes,
            "stderr_total_bytes": self.stderr_total_bytes,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
        }


@dataclass(frozen=True)
class DownloadedResult:
    """A task's result, extracted to `path`, whose digest is the one revealed on-chain."""

    taskid: bytes
    path: Path
    cid: str
    result_digest: bytes

    @property
    def digest(self) -> str:
        """The result digest, 0x-hex."""
        return "0x" + self.result_digest.hex()

    def to_json(self) -> dict[str, Any]:
        return {
            "taskid": "0x" + self.taskid.hex(),
            "path": str(self.path),
            "cid": self.cid,
            "result_digest": self.digest,
        }


# --- the quote ---------------------------------------------------------------------------


def app_address(config: ClientConfig, app: str) -> str:
    """An app's address, given as an address or as a name of the config's [apps] table."""
    if app.startswith("0x"):
        return parse_address(app, "app")
    if app in config.apps:
        return config.apps[app]
    known = ", ".join(sorted(config.apps)) or "none"
    raise UnknownResource(
        f"no app named {app!r} in the config {config.source} (names known: {known})",
        "give the app's 0x-address, or add `name = \"0x...\"` to the config's [apps] table",
    )


def params_json(args: str, input_files: Sequence[str]) -> str:
    """The request's params in iExec's form: arguments, and input files when there are."""
    document: dict[str, Any] = {"iexec_args": args}
    if input_files:
        document["iexec_input_files"] = list(input_files)
    return json.dumps(document, separators=(",", ":"))


def quote(
    connection: Connection,
    app: str,
    *,
    dataset: str | None = None,
    args: str = "",
    input_files: Sequence[str] = (),
    trust: int = 1,
    category: int = 0,
    tag: bytes | str | None = None,
    workerpool: str | None = None,
    volume: int = 1,
    max_price: int | None = None,
    orders: Sequence[Path] | None = None,
) -> Quote:
    """See `Requester.quote`."""
    if volume < 1:
        raise DecloudError(f"the volume must be at least 1 task, not {volume}")
    if trust < 0 or category < 0:
        raise DecloudError("trust and category are non-negative integers")
    requester = connection.address
    tag_bytes = parse_tag(tag) if isinstance(tag, str) else (tag or NO_TAG)
    if len(tag_bytes) != 32:
        raise DecloudError(f"a tag is 32 bytes, not {len(tag_bytes)}", "pass a bytes32 or names")
    search = NO_LIMIT if max_price is None else max_price
    request = RequestOrder(
        app=app_address(connection.config, app),
        appmaxprice=search,
        dataset=ZERO_ADDRESS if dataset is None else parse_address(dataset, "dataset"),
        datasetmaxprice=search if dataset is not None else 0,
        workerpool=ZERO_ADDRESS if workerpool is None else parse_address(workerpool, "workerpool"),
        workerpoolmaxprice=search,
        requester=requester, volume=volume, tag=tag_bytes, category=category, trust=trust,
        beneficiary=requester, callback=ZERO_ADDRESS, params=params_json(args, input_files),
        salt=secrets.token_bytes(32),
    )  # fmt: skip
    if orders:
        chosen = _from_files(connection, request, orders)
    elif connection.config.services.market is not None:
        chosen = _from_market(connection.config.services.market, request)
    else:
        chosen = _self_signed(connection, request, {})
    _check_compatible(request, chosen)
    app_order, pool_order, dataset_order = chosen
    # The request asks exactly the prices chosen: what matching locks is what was quoted.
    request = dataclasses.replace(
        request,
        appmaxprice=app_order.price,
        datasetmaxprice=0 if dataset_order is None else dataset_order.price,
        workerpoolmaxprice=pool_order.price,
    )
    found = Quote(request, app_order, pool_order, dataset_order)
    if max_price is not None and found.task_price > max_price:
        raise NoMatchingOrder(
            f"price: the cheapest compatible orders cost {found.task_price} per task "
            f"({_split(found)}), above the max price {max_price}",
            f"raise --max-price to {found.task_price} or more",
        )
    check_funds(connection, found)
    return found


def check_funds(connection: Connection, found: Quote) -> None:
    """Refuse, before anything is sent, a run the free balance in the hub cannot pay."""
    with chain_errors():
        free = connection.hub.account(found.request.requester).free
    if free < found.total:
        missing = found.total - free
        raise InsufficientFunds(
            f"the run costs {found.total} ({found.task_price} per task x {found.volume}), "
            f"and the hub account of {found.request.requester} has {free} free",
            f"deposit at least {missing} more: `decloud account deposit {missing}`",
        )


def _split(found: Quote) -> str:
    return " + ".join(f"{order.kind.value} {order.price}" for order in found.orders)


Chosen = tuple[ChosenOrder, ChosenOrder, ChosenOrder | None]
"""The app, workerpool and dataset orders (None without a dataset)."""


def _from_market(url: str, request: RequestOrder) -> Chosen:
    with MarketClient(url) as market:
        try:
            found = market.cheapest_compatible(request)
        except NoCompatibleOrder as error:
            raise _why_none(market, request, error) from error
        except MarketError as error:
            raise DecloudError(
                f"the market at {url} cannot be searched: {error}",
                "check that it runs ([services] market in the config), or give signed "
                "orders with --order FILE",
            ) from error
    app, pool, dataset = found.orders()

    def chosen(order: Any, published: PublishedOrder) -> ChosenOrder:
        return ChosenOrder(order, _signature(published.signature), SOURCE_MARKET)

    return (
        chosen(app, found.app),
        chosen(pool, found.workerpool),
        None if dataset is None or found.dataset is None else chosen(dataset, found.dataset),
    )


def _signature(text: str) -> bytes:
    """A signature in 0x-hex (0x alone for an order presigned on-chain)."""
    return bytes.fromhex(text.removeprefix("0x"))


def _why_none(market: MarketClient, request: RequestOrder, error: NoCompatibleOrder) -> Exception:
    """The first constraint, in the order a person checks them, that leaves no order."""
    names: dict[str, str] = {"requester": request.requester}
    if request.dataset != ZERO_ADDRESS:
        names["dataset"] = request.dataset
    if request.workerpool != ZERO_ADDRESS:
        names["workerpool"] = request.workerpool
    app_offers = _offers(market, OrderKind.APP, app=request.app)
    if not app_offers:
        return NoMatchingOrder(
            f"no order at all: the market sells no execution of app {request.app}",
            _ORDER_ADVICE,
        )
    allowed_apps = _offers(market, OrderKind.APP, app=request.app, **names)
    if not allowed_apps:
        return _restricted(f"app {request.app}", app_offers)
    asked = [request.tag, *(bytes.fromhex(o.order.tag[2:]) for o in allowed_apps[:1])]
    priced = [(OrderKind.APP, allowed_apps, request.appmaxprice)]
    if request.dataset != ZERO_ADDRESS:
        dataset_offers = _offers(market, OrderKind.DATASET, dataset=request.dataset)
        if not dataset_offers:
            return NoMatchingOrder(
                f"no order at all: the market sells no use of dataset {request.dataset}",
                _ORDER_ADVICE,
            )
        allowed = _offers(market, OrderKind.DATASET, dataset=request.dataset, app=request.app,
                          **names)  # fmt: skip
        if not allowed:
            return _restricted(f"dataset {request.dataset}", dataset_offers)
        asked.append(bytes.fromhex(allowed[0].order.tag[2:]))
        priced.append((OrderKind.DATASET, allowed, request.datasetmaxprice))
    pool_filter = {} if request.workerpool == ZERO_ADDRESS else {"workerpool": request.workerpool}
    all_pools = _offers(market, OrderKind.WORKERPOOL, **pool_filter)
    where = f" of workerpool {request.workerpool}" if pool_filter else ""
    if not all_pools:
        return NoMatchingOrder(
            f"no order at all: the market has no open workerpool order{where}",
            "wait for a workerpool to publish one, or name another with --workerpool",
        )
    pools = _offers(market, OrderKind.WORKERPOOL, app=request.app, **names)
    if not pools:
        return _restricted(f"workerpools{where}", all_pools)
    terms = [(offer, WorkerpoolOrder.from_message(offer.order.model_dump())) for offer in pools]
    in_category = [(o, t) for o, t in terms if t.category == request.category]
    if not in_category:
        offered = sorted({t.category for _o, t in terms})
        return NoMatchingOrder(
            f"category: no workerpool order{where} of category {request.category} "
            f"(categories offered: {', '.join(map(str, offered))})",
            "choose one of those with --category (`decloud category list` says what they are)",
        )
    trusted = [(o, t) for o, t in in_category if t.trust >= request.trust]
    if not trusted:
        best = max(t.trust for _o, t in in_category)
        return NoMatchingOrder(
            f"trust: no workerpool order{where} of category {request.category} offers trust "
            f"{request.trust} (the highest is {best})",
            f"ask for --trust {best} or less, or wait for a workerpool that offers more",
        )
    needed = tag_union(*asked)
    tagged = [o for o, t in trusted if tag_covers(t.tag, needed)]
    if not tagged:
        return NoMatchingOrder(
            f"tag: no workerpool order{where} of category {request.category} with trust >= "
            f"{request.trust} offers every tag bit asked (0x{needed.hex()})",
            "drop --tag, or wait for a workerpool with these capabilities (TEE, GPU)",
        )
    priced.append((OrderKind.WORKERPOOL, tagged, request.workerpoolmaxprice))
    for kind, offers, limit in priced:
        cheapest = min(int(o.price) for o in offers)
        if cheapest > limit:
            return NoMatchingOrder(
                f"price: the cheapest {kind.value} order asks {cheapest} per task, above the "
                f"max price {limit}",
                "raise --max-price",
            )
    return NoMatchingOrder(f"no compatible order: {error.detail}", _ORDER_ADVICE)


def _offers(market: MarketClient, kind: OrderKind, **filters: Any) -> list[PublishedOrder]:
    offers: list[PublishedOrder] = []
    for order in market.iter_orderbook(kind, min_volume=1, limit=100, **filters):
        offers.append(order)
        if len(offers) >= MAX_OFFERS_READ:
            break
    return offers


def _restricted(what: str, offers: Iterable[PublishedOrder]) -> NoMatchingOrder:
    count = len(list(offers))
    return NoMatchingOrder(
        f"restriction: the open orders of {what} ({count}) are restricted to another "
        "requester, app, dataset or workerpool",
        "use a wallet, dataset or workerpool they allow, or ask the owner for an order "
        "without the restriction",
    )


def _from_files(connection: Connection, request: RequestOrder, paths: Sequence[Path]) -> Chosen:
    given: dict[OrderKind, ChosenOrder] = {}
    for path in paths:
        order, signature = _signed_order_file(path)
        if isinstance(order, RequestOrder):
            raise OrderFileError(
                f"{path} holds a request order",
                "give the app, dataset and workerpool orders: the request is made here",
            )
        kind = kind_of(order)
        if kind in given:
            raise OrderFileError(
                f"two {kind.value} orders given ({given[kind].source}, {path})", "keep one"
            )
        given[kind] = ChosenOrder(order, signature, f"file {path}")
    return _self_signed(connection, request, given)


def _signed_order_file(path: Path) -> tuple[AnyOrder, bytes]:
    try:
        document = json.loads(path.read_text())
        order = order_from_json(document)
        signature = _signature(str(document["signature"]))
    except OSError as error:
        raise OrderFileError(f"cannot read the order file {path}: {error}") from error
    except (KeyError, TypeError, ValueError) as error:
        raise OrderFileError(
            f"{path} is not a signed decloud order: {error}",
            "sign it first with `decloud order sign FILE` (as the resource's owner)",
        ) from error
    return order, signature


def _self_signed(
    connection: Connection, request: RequestOrder, given: dict[OrderKind, ChosenOrder]
) -> Chosen:
    """The orders `given`, completed by orders the wallet signs for what it owns."""
    app_order = given.get(OrderKind.APP) or _sign_own(
        connection, OrderKind.APP, request.app, OrderTerms()
    )
    dataset_order = given.get(OrderKind.DATASET)
    if dataset_order is None and request.dataset != ZERO_ADDRESS:
        dataset_order = _sign_own(connection, OrderKind.DATASET, request.dataset, OrderTerms())
    pool_order = given.get(OrderKind.WORKERPOOL)
    if pool_order is None:
        if request.workerpool == ZERO_ADDRESS:
            raise NoMatchingOrder(
                "no workerpool order: there is no market in the config and no workerpool "
                "order was given",
                "name a workerpool the wallet owns with --workerpool, give a signed "
                "workerpool order with --order FILE, or set [services] market",
            )
        asked = [request.tag, app_order.order.tag]
        if dataset_order is not None:
            asked.append(dataset_order.order.tag)
        terms = OrderTerms(category=request.category, trust=request.trust, tag=tag_union(*asked))
        pool_order = _sign_own(connection, OrderKind.WORKERPOOL, request.workerpool, terms)
    return app_order, pool_order, dataset_order


def _sign_own(
    connection: Connection, kind: OrderKind, resource: str, terms: OrderTerms
) -> ChosenOrder:
    orders = Orders(connection)
    try:
        template = orders.template(kind, resource, terms)
    except NotOwner as error:
        raise NotOwner(
            f"no {kind.value} order to match: without a market or an order file, only orders "
            f"for what the wallet owns can be signed here, and {error}",
            f"set [services] market in the config, or give the {kind.value} order its owner "
            "signed with --order FILE",
        ) from error
    signed = orders.sign(template)
    assert not isinstance(signed.order, RequestOrder)
    return ChosenOrder(signed.order, signed.signature, SOURCE_SELF)


def _check_compatible(request: RequestOrder, chosen: Chosen) -> None:
    """What matchOrders would refuse in the orders chosen, said before anything is sent."""
    app, pool, dataset = chosen
    if app.resource != request.app:
        raise NoMatchingOrder(
            f"the app order ({app.source}) sells app {app.resource}, not {request.app}"
        )
    if dataset is not None and dataset.resource != request.dataset:
        raise NoMatchingOrder(
            f"the dataset order ({dataset.source}) sells dataset {dataset.resource}, "
            f"not {request.dataset}"
        )
    order = pool.order
    assert isinstance(order, WorkerpoolOrder)
    if request.workerpool not in (ZERO_ADDRESS, order.workerpool):
        raise NoMatchingOrder(
            f"the workerpool order ({pool.source}) is for workerpool {order.workerpool}, "
            f"not {request.workerpool}"
        )
    if order.category != request.category:
        raise NoMatchingOrder(
            f"category: the workerpool order ({pool.source}) is for category "
            f"{order.category}, the request asks {request.category}",
            f"ask for --category {order.category}, or use another workerpool order",
        )
    if order.trust < request.trust:
        raise NoMatchingOrder(
            f"trust: the workerpool order ({pool.source}) offers trust {order.trust}, the "
            f"request asks {request.trust}",
            f"ask for --trust {order.trust} or less, or use another workerpool order",
        )
    asked = [request.tag, app.order.tag, *([dataset.order.tag] if dataset else [])]
    if not tag_covers(order.tag, tag_union(*asked)):
        raise NoMatchingOrder(
            f"tag: the workerpool order ({pool.source}) offers tag 0x{order.tag.hex()}, "
            f"the run needs 0x{tag_union(*asked).hex()}",
            "use a workerpool order with these capabilities",
        )


# --- the match ---------------------------------------------------------------------------


def run(connection: Connection, found: Quote) -> RunStarted:
    """See `Requester.run`."""
    wallet = connection.require_wallet()
    if to_checksum_address(found.request.requester) != wallet.address:
        raise NotOwner(
            f"the quote is for requester {found.request.requester}, not wallet {wallet.address}",
            "make the quote with the wallet that runs it",
        )
    check_funds(connection, found)
    hub = connection.hub
    app, pool = found.app.order, found.workerpool.order
    dataset = None if found.dataset is None else found.dataset.order
    assert isinstance(app, AppOrder) and isinstance(pool, WorkerpoolOrder)
    assert dataset is None or isinstance(dataset, DatasetOrder)
    with chain_errors(wallet.address):
        deal = hub.match_orders(
            app, found.app.signature, pool, found.workerpool.signature,
            found.request, hub.sign(found.request, wallet.private_key),
            dataset, b"" if found.dataset is None else found.dataset.signature,
        )  # fmt: skip
    return RunStarted.of(deal)


# --- logs and results --------------------------------------------------------------------


def logs(connection: Connection, taskid: str) -> list[ReplicateLogs]:
    """See `Requester.logs`."""
    task = "0x" + parse_bytes32(taskid, "a task id").hex()
    url = connection.config.services.scheduler
    if url is None:
        raise ConfigError(
            "no scheduler in the config: logs are kept by the workerpool's scheduler",
            'add `scheduler = "http://..."` to the config\'s [services] table',
        )
    wallet = connection.require_wallet()
    request = LogsRequest(taskid=task)
    auth = sign_request(
        request, service=SERVICE_NAME, action=TASK_LOGS, domain=connection.hub.domain,
        private_key=wallet.private_key, signer=wallet.address,
    )  # fmt: skip
    body = {"request": request.model_dump(mode="json"), "auth": auth.model_dump(mode="json")}
    try:
        answer = httpx.post(f"{url.rstrip('/')}/v1/tasks/{task}/logs", json=body, timeout=10)
    except httpx.HTTPError as error:
        raise DecloudError(
            f"the scheduler at {url} is unreachable: {error}", "check [services] scheduler"
        ) from error
    if answer.status_code == 403:
        raise Refused(
            f"the scheduler refused: only the requester of task {task} reads its logs, and "
            f"wallet {wallet.address} is not it",
            "use the requester's wallet (--wallet NAME)",
        )
    if answer.status_code == 404:
        raise UnknownResource(
            f"the scheduler at {url} has no task {task}",
            "check the id, and that the task is one of this scheduler's workerpool",
        )
    if answer.is_error:
        raise Refused(f"the scheduler at {url} answered {answer.status_code}: {answer.text[:300]}")
    found = TaskLogs.model_validate(answer.json())
    return [
        ReplicateLogs(
            worker=replicate.worker,
            stdout=base64.b64decode(replicate.stdout),
            stderr=base64.b64decode(replicate.stderr),
            stdout_total_bytes=replicate.stdout_total_bytes,
            stderr_total_bytes=replicate.stderr_total_bytes,
        )
        for replicate in found.replicates
    ]


def download_result(connection: Connection, taskid: str, destination: Path) -> DownloadedResult:
    """See `Requester.download_result`."""
    task = parse_bytes32(taskid, "a task id")
    url = connection.config.services.storage
    if url is None:
        raise ConfigError(
            "no result store in the config", 'add `storage = "http://..."` to [services]'
        )
    if destination.exists():
        raise DecloudError(
            f"{destination} already exists", "download into a new directory (--output DIR)"
        )
    cid, digest = _result_on_chain(connection, task)
    try:
        with StorageClient(url) as store:
            store.download(cid, destination, expected_digest=digest)
    except CorruptResult as error:
        raise ResultMismatch(
            f"the archive behind the result link of task 0x{task.hex()} is not the result "
            f"its workers agreed on (consensus digest 0x{digest.hex()} on-chain): {error}; "
            "nothing was kept",
            "do not use that archive: tell the workerpool that finalized the task with this "
            f"link, or the result store at {url}",
        ) from error
    except StorageError as error:
        raise DecloudError(
            f"the result of task 0x{task.hex()} cannot be downloaded: {error}",
            f"check [services] storage ({url})",
        ) from error
    return DownloadedResult(task, destination, cid, digest)


def _result_on_chain(connection: Connection, task: bytes) -> tuple[str, bytes]:
    """The CID the task was finalized with, and the consensus digest its winners revealed."""
    hub = connection.hub
    with chain_errors():
        status = hub.task(task).status
        if status != TASK_COMPLETED:
            state = CHAIN_STATUS.get(status, str(status))
            if state == "failed":
                raise TaskNotCompleted(
                    f"task 0x{task.hex()} failed on-chain: it has no result and will have none",
                    "its price was refunded to the requester (`decloud account show`)",
                )
            raise TaskNotCompleted(
                f"task 0x{task.hex()} is {state} on-chain, not completed: it has no result yet"
                + (" (no worker contributed yet)" if state == "unset" else ""),
                f"follow it with `decloud task show 0x{task.hex()} --watch`, then download",
            )
        since = connection.config.contracts.deployed_at
        finalized = hub.hub.events.TaskFinalize().get_logs(
            argument_filters={"taskid": task}, from_block=since
        )
        revealed = hub.hub.events.TaskReveal().get_logs(
            argument_filters={"taskid": task}, from_block=since
        )
    digests = {bytes(event["args"]["result_digest"]) for event in revealed}
    if not finalized or len(digests) != 1:
        raise DecloudError(
            f"task 0x{task.hex()} is completed but the node returns no single result for it "
            f"({len(finalized)} finalization, {len(digests)} revealed digests)",
            "ask a node that keeps every log (an archive node)",
        )
    link = bytes(finalized[0]["args"]["results"]).decode(errors="replace")
    if not link.startswith(RESULT_LINK_PREFIX):
        raise DecloudError(
            f"task 0x{task.hex()} was finalized with {link!r}, not a result store link "
            f"({RESULT_LINK_PREFIX}<cid>)",
            "the workerpool stored its result elsewhere: fetch it from there",
        )
    return link.removeprefix(RESULT_LINK_PREFIX), digests.pop()
