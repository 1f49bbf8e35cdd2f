"""`decloud market run`, the market service, and `decloud bench market`.

The commands people use with a market (`decloud order publish|show|unpublish`, `decloud
orderbook ...`) live with the other client commands, in `decloud.commands`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from decloud.market.schemas import MAX_BATCH
from decloud.service.logs import JsonLogsOption, LogLevel, LogLevelOption, configure_logging

market_app = typer.Typer(help="The market service.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


@market_app.callback()
def market() -> None:
    """The market service (more commands will join `run`)."""


@market_app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(envvar="DECLOUD_CONFIG", dir_okay=False, help="TOML config ([market] table)"),
    ] = None,
    as_json: JsonLogsOption = False,
    log_level: LogLevelOption = LogLevel.INFO,
) -> None:
    """Serve the market: migrate its database, follow the chain, answer the API."""
    from decloud.market.service import run as serve
    from decloud.market.settings import MarketSettings
    from decloud.service.settings import load_settings

    configure_logging(as_json=as_json, level=log_level)
    serve(load_settings(MarketSettings, "market", config), log_level)


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
