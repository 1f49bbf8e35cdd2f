"""`decloud orderbook app|dataset|workerpool|requester`: the market's books, one page at a
time, cheapest first.

Each command declares the filters its book takes, by the names of the market's API (the
`--help` of each lists exactly those); `_browse` does the rest for all four.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    MarketOption,
    console,
    market_errors,
    market_url,
    print_json,
    reports_errors,
    say,
)
from decloud.market.client import MarketClient
from decloud.market.models import OrderKind, OrderStatus
from decloud.market.schemas import MAX_PAGE

app = typer.Typer(help="Browse the market's orderbooks.", no_args_is_help=True)

Address = Annotated[str | None, typer.Option(help="Address filter", show_default=False)]
Uint = Annotated[int | None, typer.Option(min=0, show_default=False)]
Tag = Annotated[
    str | None,
    typer.Option(help="0x bytes32 tag: keep orders with (min) or within (max) these bits"),
]
Status = Annotated[OrderStatus, typer.Option(help="Orders in this status")]
Limit = Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Orders per page")]
Cursor = Annotated[str | None, typer.Option(help="Next page, as printed by the previous one")]


@app.command("app")
@reports_errors
def app_book(
    app: Address = None,
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
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """App orders, cheapest first."""
    _browse(OrderKind.APP, **locals())


@app.command("dataset")
@reports_errors
def dataset_book(
    dataset: Address = None,
    owner: Address = None,
    app: Address = None,
    workerpool: Address = None,
    requester: Address = None,
    min_tag: Tag = None,
    max_tag: Tag = None,
    min_volume: Uint = None,
    max_price: Uint = None,
    status: Status = OrderStatus.OPEN,
    limit: Limit = 20,
    cursor: Cursor = None,
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dataset orders, cheapest first."""
    _browse(OrderKind.DATASET, **locals())


@app.command("workerpool")
@reports_errors
def workerpool_book(
    workerpool: Address = None,
    owner: Address = None,
    app: Address = None,
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
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Workerpool orders, cheapest first."""
    _browse(OrderKind.WORKERPOOL, **locals())


@app.command("requester")
@reports_errors
def request_book(
    requester: Address = None,
    app: Address = None,
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
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request orders, highest workerpool max price first."""
    _browse(OrderKind.REQUEST, **locals())


def _browse(
    kind: OrderKind,
    *,
    config: Path | None,
    market: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """One page of the `kind` book; `filters` are the command's other parameters, named as
    the API's query parameters."""
    url = market_url(config, market)
    with market_errors(url), MarketClient(url) as client:
        page = client.orderbook(kind, **filters)
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    table = Table()
    # Hashes and addresses are copied from here: folded when too wide, never cut short.
    for column in ("order hash", "owner", "price", "remaining", "status"):
        table.add_column(column, overflow="fold")
    for order in page.orders:
        table.add_row(
            order.order_hash, order.owner, order.price, order.remaining, order.status.value
        )
    console().print(table)
    if page.next_cursor:
        say(f"more: --cursor {page.next_cursor}")
