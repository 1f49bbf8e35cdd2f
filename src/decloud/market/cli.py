"""`decloud order ...`, `decloud orderbook ...` and `decloud market run`.

The lead mounts the three groups and the benchmark in `decloud.cli`:
`app.add_typer(app, name="order")`, `app.add_typer(orderbook_app, name="orderbook")`,
`app.add_typer(market_app, name="market")`, `bench.command("market")(bench_market)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from decloud.market.client import DEFAULT_URL, MarketClient, MarketError, order_from_json
from decloud.market.models import OrderKind, OrderStatus
from decloud.market.schemas import MAX_BATCH, OrderPage, PublishedOrder

app = typer.Typer(help="Sign, publish, show and unpublish orders.", no_args_is_help=True)
orderbook_app = typer.Typer(help="Browse the market's orderbooks.", no_args_is_help=True)
market_app = typer.Typer(help="The market service.", no_args_is_help=True)

MarketUrl = Annotated[
    str, typer.Option("--market", envvar="DECLOUD_MARKET_URL", help="URL of the market")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
KeyFile = Annotated[
    Path,
    typer.Option(
        "--key-file",
        envvar="DECLOUD_KEY_FILE",
        exists=True,
        dir_okay=False,
        help="File holding the signer's private key (hex)",
    ),
]
Address = Annotated[str | None, typer.Option(help="Address filter")]
Uint = Annotated[int | None, typer.Option(min=0)]


def _key(path: Path) -> str:
    return path.read_text().strip()


def _fail(error: MarketError) -> typer.Exit:
    # The message is the market's text: never read it as rich markup.
    Console(stderr=True).print(f"refused: {error}", markup=False, soft_wrap=True, style="red")
    return typer.Exit(1)


@app.command("publish")
def publish(
    order_file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help='JSON: {"kind": ..., "order": {...}}'),
    ],
    key_file: KeyFile,
    presigned: Annotated[
        bool, typer.Option(help="Publish without a signature: the order is presigned on-chain")
    ] = False,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Sign an order with the key and publish it."""
    order = order_from_json(json.loads(order_file.read_text()))
    with MarketClient(market) as client:
        try:
            if presigned:
                published = client.publish(order, b"")
            else:
                published = client.sign_and_publish(order, _key(key_file))
        except MarketError as error:
            raise _fail(error) from error
    _print_order(published, as_json)


@app.command("unpublish")
def unpublish(
    key_file: KeyFile,
    order_hash: Annotated[str | None, typer.Argument(help="The order to remove")] = None,
    all_orders: Annotated[
        bool, typer.Option("--all", help="Remove all of the key's orders")
    ] = False,
    kind: Annotated[OrderKind | None, typer.Option(help="With --all: only this kind")] = None,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Remove orders from the book (they stay valid on-chain until closed there)."""
    if (order_hash is None) == (not all_orders):
        raise typer.BadParameter("give an order hash, or --all")
    with MarketClient(market) as client:
        try:
            if order_hash is not None:
                removed = client.unpublish(order_hash, _key(key_file))
            else:
                removed = client.unpublish_all(_key(key_file), kind)
        except MarketError as error:
            raise _fail(error) from error
    if as_json:
        typer.echo(json.dumps({"removed": removed}))
    else:
        Console().print(f"removed {len(removed)} order(s)", *removed, sep="\n")


@app.command("show")
def show(
    order_hash: str,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """One published order and its state."""
    with MarketClient(market) as client:
        try:
            found = client.show(order_hash)
        except MarketError as error:
            raise _fail(error) from error
    _print_order(found, as_json)


def _print_order(order: PublishedOrder, as_json: bool) -> None:
    if as_json:
        typer.echo(order.model_dump_json(indent=2))
        return
    table = Table(show_header=False, title=f"{order.kind} order {order.order_hash}")
    rows: dict[str, Any] = {
        "status": order.status.value + (f" ({order.dead_reason})" if order.dead_reason else ""),
        "owner": order.owner,
        "remaining": f"{order.remaining} of {order.volume}",
        **order.order.model_dump(),
    }
    for name, value in rows.items():
        table.add_row(name, str(value))
    Console().print(table)


def _print_page(page: OrderPage, as_json: bool) -> None:
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    table = Table("order hash", "owner", "price", "remaining", "status")
    for order in page.orders:
        table.add_row(order.order_hash, order.owner, order.price, order.remaining, order.status)
    Console().print(table)
    if page.next_cursor:
        Console().print(f"more: --cursor {page.next_cursor}")


def _browse(kind: OrderKind, market: str, as_json: bool, filters: dict[str, Any]) -> None:
    """The book commands' other parameters are the API's filters, by the same names."""
    with MarketClient(market) as client:
        try:
            page = client.orderbook(kind, **filters)
        except MarketError as error:
            raise _fail(error) from error
    _print_page(page, as_json)


Status = Annotated[OrderStatus, typer.Option(help="Orders in this status")]
Limit = Annotated[int, typer.Option(min=1, max=100)]
Cursor = Annotated[str | None, typer.Option(help="Next page, as printed by the previous one")]
Tag = Annotated[str | None, typer.Option(help="bytes32 tag, 0x-hex")]


@orderbook_app.command("app")
def app_book(
    app_address: Annotated[str | None, typer.Option("--app")] = None,
    owner: Address = None,
    dataset: Address = None,
    workerpool: Address = None,
    requester: Address = None,
    min_tag: Tag = None,
    max_tag: Tag = None,
    min_volume: Uint = None,
    max_price: Uint = None,
    status: Status = OrderStatus.OPEN,
    limit: Limit = 20,
    cursor: Cursor = None,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """App orders, cheapest first."""
    filters = dict(locals())
    filters["app"] = filters.pop("app_address")
    _browse(OrderKind.APP, filters.pop("market"), filters.pop("as_json"), filters)


@orderbook_app.command("dataset")
def dataset_book(
    dataset: Address = None,
    owner: Address = None,
    app_address: Annotated[str | None, typer.Option("--app")] = None,
    workerpool: Address = None,
    requester: Address = None,
    min_tag: Tag = None,
    max_tag: Tag = None,
    min_volume: Uint = None,
    max_price: Uint = None,
    status: Status = OrderStatus.OPEN,
    limit: Limit = 20,
    cursor: Cursor = None,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Dataset orders, cheapest first."""
    filters = dict(locals())
    filters["app"] = filters.pop("app_address")
    _browse(OrderKind.DATASET, filters.pop("market"), filters.pop("as_json"), filters)


@orderbook_app.command("workerpool")
def workerpool_book(
    workerpool: Address = None,
    owner: Address = None,
    app_address: Annotated[str | None, typer.Option("--app")] = None,
    dataset: Address = None,
    requester: Address = None,
    category: Uint = None,
    min_trust: Uint = None,
    max_trust: Uint = None,
    min_tag: Tag = None,
    max_tag: Tag = None,
    min_volume: Uint = None,
    max_price: Uint = None,
    status: Status = OrderStatus.OPEN,
    limit: Limit = 20,
    cursor: Cursor = None,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Workerpool orders, cheapest first."""
    filters = dict(locals())
    filters["app"] = filters.pop("app_address")
    _browse(OrderKind.WORKERPOOL, filters.pop("market"), filters.pop("as_json"), filters)


@orderbook_app.command("requester")
def request_book(
    requester: Address = None,
    app_address: Annotated[str | None, typer.Option("--app")] = None,
    dataset: Address = None,
    workerpool: Address = None,
    category: Uint = None,
    min_trust: Uint = None,
    max_trust: Uint = None,
    min_tag: Tag = None,
    max_tag: Tag = None,
    min_volume: Uint = None,
    min_price: Uint = None,
    status: Status = OrderStatus.OPEN,
    limit: Limit = 20,
    cursor: Cursor = None,
    market: MarketUrl = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Request orders, highest workerpool max price first."""
    filters = dict(locals())
    filters["app"] = filters.pop("app_address")
    _browse(OrderKind.REQUEST, filters.pop("market"), filters.pop("as_json"), filters)


@market_app.callback()
def market() -> None:
    """The market service (more commands will join `run`)."""


@market_app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(envvar="DECLOUD_CONFIG", dir_okay=False, help="TOML config ([market] table)"),
    ] = None,
) -> None:
    """Serve the market: migrate its database, follow the chain, answer the API."""
    from decloud.market.service import run as serve
    from decloud.market.settings import MarketSettings
    from decloud.service.settings import load_settings

    serve(load_settings(MarketSettings, "market", config))


def bench_market(
    open_orders: Annotated[int, typer.Option(min=1, help="Open orders in the book")] = 100_000,
    publishes: Annotated[
        int, typer.Option(min=1, help="Orders published in batches, timed")
    ] = 2_000,
    single_publishes: Annotated[
        int, typer.Option(min=1, help="Orders published one per request, timed")
    ] = 500,
    batch_size: Annotated[
        int, typer.Option(min=2, max=MAX_BATCH, help="Orders per batch request")
    ] = 50,
    connections: Annotated[
        int, typer.Option(min=1, help="Publishing connections, each one request at a time")
    ] = 1,
    queries: Annotated[int, typer.Option(min=100, help="Queries to time")] = 300,
    as_json: AsJson = False,
) -> None:
    """Publish rate (signature and chain checks included) and query latency with a full
    book, through `decloud market run` on a fresh anvil and a throwaway PostgreSQL."""
    from decloud.market import bench

    report = bench.run(
        open_orders=open_orders,
        publishes=publishes,
        single_publishes=single_publishes,
        batch_size=batch_size,
        connections=connections,
        queries=queries,
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table("measure", "value", "target")
    table.add_row(
        f"publish_per_s (batches of {batch_size})", str(report["publish_per_s"]), ">= 1000"
    )
    table.add_row("publish_per_s (one per request)", str(report["publish"]["single_per_s"]), "")
    table.add_row("query p50 (ms)", str(report["query_ms"]["p50"]), "")
    table.add_row("query p99 (ms)", str(report["query_ms"]["p99"]), "<= 20")
    Console().print(table, f"{report['open_orders']} open orders, PostgreSQL, {report['server']}")
