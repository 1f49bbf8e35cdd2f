"""The market's HTTP API: publish, query and unpublish orders; follow the book live.

Handlers stay thin: parsing is pydantic's, the rules are `admission`'s, the SQL is `store`'s.

Publishing and the books are the hot paths: their handlers are async and make one trip to
the thread pool for all their blocking work (SQL, chain reads), where a sync handler with a
session dependency makes four (each costs more than the query it carries on a loaded host).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from decloud.market import store
from decloud.market.chain import MarketChain
from decloud.market.models import OrderKind, OrderRow
from decloud.market.publishing import SentOrder, publish_all
from decloud.market.schemas import (
    MAX_PAGE,
    BookQuery,
    FeedEvent,
    MarketInfo,
    MarketLimits,
    OfferQuery,
    OrderPage,
    PublishedOrder,
    PublishedOrders,
    PublishOrder,
    PublishOrders,
    PublishOutcome,
    RequestQuery,
    SignedUnpublishAll,
    SignedUnpublishOne,
    Unpublished,
    WorkerpoolQuery,
)
from decloud.market.settings import MarketSettings
from decloud.market.sync import OrderbookSync
from decloud.service.auth import RequestVerifier
from decloud.service.db import Database, request_session
from decloud.service.problems import (
    ProblemError,
    install_problem_handlers,
    problem_details,
    problem_responses,
)

SERVICE_NAME = "market"
"""The service name signed requests must carry."""
UNPUBLISH = "unpublish"
UNPUBLISH_ALL = "unpublish-all"
FEED_POLL_S = 0.25
FEED_HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class Market:
    """What the handlers share: settings, the chain, the sync and the request verifier."""

    settings: MarketSettings
    database: Database
    chain: MarketChain
    sync: OrderbookSync
    verifier: RequestVerifier


async def _market(request: Request) -> Market:
    """Async: it does no I/O, and a sync dependency would cost a trip to the thread pool."""
    return cast(Market, request.app.state.market)


router = APIRouter(prefix="/v1")
MarketDep = Annotated[Market, Depends(_market)]
# scope="function": the transaction commits before the answer is sent, so a client told
# "published" or "removed" finds it so in its next query (FastAPI's default scope would
# commit after the answer).
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


def create_app(
    settings: MarketSettings,
    database: Database,
    chain: MarketChain,
    *,
    run_sync: bool = True,
) -> FastAPI:
    """The market's ASGI app; with `run_sync`, it follows the chain while it serves."""
    sync = OrderbookSync(
        database,
        chain,
        name=SERVICE_NAME,
        # Nothing of the protocol precedes its deployment.
        start_block=settings.start_block or chain.deployment.deployed_at,
        confirmations=settings.confirmations,
    )
    market = Market(settings, database, chain, sync, RequestVerifier(SERVICE_NAME, chain.domain))
    app = FastAPI(
        title="decloud market",
        version="1",
        description="The orderbook of decloud: signed orders, checked against the chain.",
        lifespan=_syncing(market) if run_sync else None,
    )
    app.state.market = market
    app.state.database = database
    install_problem_handlers(app, max_body_bytes=settings.max_body_bytes)
    app.include_router(router)
    return app


def _syncing(market: Market) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the chain sync runs in a thread beside the server."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(
            target=market.sync.run,
            args=(stop, market.settings.sync_interval_s),
            name="market-chain-sync",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    return lifespan


@router.get("/info")
def info(market: MarketDep, session: SessionDep) -> MarketInfo:
    """The chain and hub orders are signed for, the sync's progress and the limits."""
    return MarketInfo(
        chain_id=market.chain.domain.chain_id,
        hub=market.chain.deployment.hub,
        marketplace=market.chain.deployment.marketplace,
        synced_block=market.sync.synced_block(session),
        limits=MarketLimits(
            max_open_orders_per_owner=market.settings.max_open_orders_per_owner,
            max_page=MAX_PAGE,
            max_body_bytes=market.settings.max_body_bytes,
        ),
    )


@router.post("/orders", status_code=201, responses=problem_responses(400, 409, 413, 422))
async def publish(body: PublishOrder, market: MarketDep) -> PublishedOrder:
    """Publish a signed order, once it passed every rule (see the `rule` of a refusal)."""
    outcome = (await _publish_all(market, [body]))[0]
    if isinstance(outcome, ProblemError):
        raise outcome
    return outcome


@router.post("/orders/batch", responses=problem_responses(400, 413, 422))
async def publish_batch(body: PublishOrders, market: MarketDep) -> PublishedOrders:
    """Publish several signed orders in one request. Each is checked by the same rules as
    alone and gets its own outcome: a refused order stores nothing, the others are
    published. A body that does not fit the schema is refused whole."""
    outcomes = await _publish_all(market, body.orders)
    return PublishedOrders(outcomes=[_outcome(outcome) for outcome in outcomes])


@router.get("/orders/{order_hash}", responses=problem_responses(404, 422))
def show(
    order_hash: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$")], session: SessionDep
) -> PublishedOrder:
    """One published order, whatever its kind and status."""
    found = store.find_published(session, order_hash)
    if found is None:
        raise _not_found(order_hash)
    return found


@router.post("/orders/unpublish", responses=problem_responses(401, 403, 404, 422))
def unpublish(body: SignedUnpublishOne, market: MarketDep, session: SessionDep) -> Unpublished:
    """Remove one order from the book, by a request its owner signed. The order stays
    valid on-chain: close it there to make sure nobody matches it."""
    signer = market.verifier.signer_of(session, UNPUBLISH, body.request, body.auth)
    row = _published_row(session, body.request.order_hash)
    if row.owner != signer:
        raise ProblemError(
            403, "auth.not_owner", f"order {row.order_hash} was published by {row.owner}"
        )
    return Unpublished(removed=store.remove(session, [row]))


@router.post("/orders/unpublish-all", responses=problem_responses(401, 422))
def unpublish_all(body: SignedUnpublishAll, market: MarketDep, session: SessionDep) -> Unpublished:
    """Remove every order of the signer (of one kind, if given) from the book."""
    signer = market.verifier.signer_of(session, UNPUBLISH_ALL, body.request, body.auth)
    return Unpublished(
        removed=store.remove(session, store.owned(session, signer, body.request.kind))
    )


@router.get("/orderbook/app", responses=problem_responses(422))
async def app_book(query: Annotated[OfferQuery, Query()], market: MarketDep) -> OrderPage:
    """App orders, cheapest first, then oldest."""
    return await _page(market, OrderKind.APP, query)


@router.get("/orderbook/dataset", responses=problem_responses(422))
async def dataset_book(query: Annotated[OfferQuery, Query()], market: MarketDep) -> OrderPage:
    """Dataset orders, cheapest first, then oldest."""
    return await _page(market, OrderKind.DATASET, query)


@router.get("/orderbook/workerpool", responses=problem_responses(422))
async def workerpool_book(
    query: Annotated[WorkerpoolQuery, Query()], market: MarketDep
) -> OrderPage:
    """Workerpool orders, cheapest first, then oldest."""
    return await _page(market, OrderKind.WORKERPOOL, query)


@router.get("/orderbook/request", responses=problem_responses(422))
async def request_book(query: Annotated[RequestQuery, Query()], market: MarketDep) -> OrderPage:
    """Request orders, highest workerpool max price first, then oldest."""
    return await _page(market, OrderKind.REQUEST, query)


@router.get(
    "/feed",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: `id` is the event's seq, `event` the change, "
            "`data` a FeedEvent",
            "content": {"text/event-stream": {"schema": FeedEvent.model_json_schema()}},
        },
        **problem_responses(422),
    },
)
async def feed(
    market: MarketDep,
    request: Request,
    after: Annotated[int | None, Query(ge=0, description="Last seq already seen")] = None,
    duration_s: Annotated[
        float, Query(gt=0, le=3600, description="The stream ends after this; reconnect")
    ] = 300.0,
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,18}$")] = None,
) -> StreamingResponse:
    """Live changes of the book (published, updated, removed) as server-sent events, from
    `after` (or `Last-Event-ID`), else from now."""
    start = after if after is not None else (int(last_event_id) if last_event_id else None)
    if start is None:
        start = await run_in_threadpool(_last_feed_seq, market.database)
    return StreamingResponse(
        _feed_events(market.database, request, start, duration_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _publish_all(
    market: Market, sent: Sequence[SentOrder]
) -> list[PublishedOrder | ProblemError]:
    return await run_in_threadpool(_publish_in_transaction, market, sent)


def _publish_in_transaction(
    market: Market, sent: Sequence[SentOrder]
) -> list[PublishedOrder | ProblemError]:
    limit = market.settings.max_open_orders_per_owner
    with market.database.transaction() as session:
        return publish_all(session, market.chain, limit, sent)


def _outcome(outcome: PublishedOrder | ProblemError) -> PublishOutcome:
    if isinstance(outcome, ProblemError):
        return PublishOutcome(problem=problem_details(outcome.status, outcome.rule, outcome.detail))
    return PublishOutcome(published=outcome)


def _published_row(session: Session, order_hash: str) -> OrderRow:
    row = store.find(session, order_hash)
    if row is None:
        raise _not_found(order_hash)
    return row


def _not_found(order_hash: str) -> ProblemError:
    return ProblemError(404, "order.not_found", f"no order {order_hash.lower()} in the book")


async def _page(market: Market, kind: OrderKind, query: BookQuery) -> OrderPage:
    return await run_in_threadpool(_read_page, market.database, kind, query)


def _read_page(database: Database, kind: OrderKind, query: BookQuery) -> OrderPage:
    with database.transaction() as session:
        orders, next_cursor = store.page(session, kind, query)
        return OrderPage(orders=orders, next_cursor=next_cursor)


def _last_feed_seq(database: Database) -> int:
    with database.transaction() as session:
        return store.last_feed_seq(session)


def _feed_batch(database: Database, after: int) -> list[FeedEvent]:
    with database.transaction() as session:
        return [
            FeedEvent(
                seq=row.seq,
                change=row.change,
                order_hash=row.order_hash,
                kind=row.kind,
                data=row.data,
            )
            for row in store.feed_after(session, after)
        ]


async def _feed_events(
    database: Database, request: Request, after: int, duration_s: float
) -> AsyncIterator[str]:
    """Polls the feed table: every instance sharing the database sees every change."""
    deadline = time.monotonic() + duration_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and not await request.is_disconnected():
        events = await run_in_threadpool(_feed_batch, database, after)
        for event in events:
            after = event.seq
            data = event.model_dump_json()
            yield f"id: {event.seq}\nevent: {event.change.value}\ndata: {data}\n\n"
        if events:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since > FEED_HEARTBEAT_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(FEED_POLL_S)
