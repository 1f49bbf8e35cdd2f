"""`decloud devnet up | status | down`.

It imports only light modules (see decloud.devnet.layout), so that `up` starts its service
launcher at once.

`python -m decloud.devnet` runs the same as `decloud devnet`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from decloud.devnet import lifecycle
from decloud.devnet.launcher import StartError
from decloud.devnet.layout import DIR_VARIABLE, LayoutError, default_config, default_dir
from decloud.devnet.lifecycle import DevnetError, UpOptions

app = typer.Typer(
    help="A whole decloud marketplace on this machine: chain, services, workers.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="DECLOUD_CONFIG",
        dir_okay=False,
        help="The config file every command reads (default ~/.decloud/config.toml)",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        envvar=DIR_VARIABLE,
        file_okay=False,
        help="Where the devnet keeps keys, databases and logs (default ~/.decloud/devnet)",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
_TOKEN = Decimal(10**18)


@app.command("up")
def up(
    workers: Annotated[int, typer.Option(min=0, max=32, help="Worker agents to start")] = 3,
    docker_url: Annotated[
        str | None,
        typer.Option(
            envvar="DECLOUD_DEVNET_DOCKER_URL",
            help="Docker Engine API for the workers' OCI runtime (WASM only if unset)",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each step may take to answer")
    ] = 60.0,
    config: ConfigOption = None,
    directory: DirOption = None,
    as_json: AsJson = False,
) -> None:
    """Start anvil, deploy the protocol, fund every role, register the sample apps, start
    the market, the result store, the scheduler and the workers, publish app and workerpool
    orders on the market, and write the config file."""
    options = UpOptions(
        config=_absolute(config or default_config()),
        root=_absolute(directory or default_dir()),
        workers=workers,
        docker_url=docker_url,
        timeout_s=timeout,
    )
    console = Console(stderr=True, quiet=as_json)
    try:
        with console.status("starting the devnet..."):
            record = lifecycle.up(options)
    except (DevnetError, LayoutError, StartError) as error:
        raise _fail(error) from error
    show_report(lifecycle.status(options.config, options.root), as_json)
    if not as_json:
        Console().print(
            f"ready in {record.up_seconds} s; config {options.config}; "
            "stop it with `decloud devnet down`"
        )


@app.command("status")
def show_status(
    config: ConfigOption = None, directory: DirOption = None, as_json: AsJson = False
) -> None:
    """Each process alive or dead, the URLs, the chain's head, the balances, the sample apps
    and the orders on the market; exits 1 unless everything runs."""
    try:
        report = lifecycle.status(_absolute(config or default_config()), _optional(directory))
    except DevnetError as error:
        raise _fail(error) from error
    show_report(report, as_json)
    if not report["running"]:
        raise typer.Exit(1)


@app.command("down")
def down(
    keep_logs: Annotated[bool, typer.Option(help="Keep the logs directory")] = False,
    config: ConfigOption = None,
    directory: DirOption = None,
    as_json: AsJson = False,
) -> None:
    """Stop every process of the devnet (SIGTERM, then SIGKILL after a while) and remove
    its state and its config file."""
    try:
        stopped = lifecycle.down(
            _absolute(config or default_config()), _optional(directory), keep_logs=keep_logs
        )
    except LayoutError as error:
        raise _fail(error) from error
    if as_json:
        typer.echo(json.dumps(stopped.to_json()))
        return
    console = Console()
    if stopped.dir is None:
        console.print("no devnet found: nothing to stop")
        return
    console.print(f"stopped {', '.join(stopped.stopped) or 'nothing'}; removed {stopped.dir}")
    if stopped.killed:
        console.print(f"killed, as they ignored SIGTERM: {', '.join(stopped.killed)}")
    if stopped.logs:
        console.print(f"logs kept in {stopped.logs}")


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()


def _optional(path: Path | None) -> Path | None:
    return _absolute(path) if path is not None else None


def _fail(error: Exception) -> typer.Exit:
    # Messages quote logs: never read them as rich markup.
    Console(stderr=True).print(f"devnet: {error}", markup=False, soft_wrap=True, style="red")
    return typer.Exit(1)


def show_report(report: dict[str, Any], as_json: bool) -> None:
    """A `status` report, as JSON or as tables."""
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    processes = Table("process", "pid", "state", "url", title=f"devnet in {report['dir']}")
    for process in report["processes"]:
        state = "[green]alive[/green]" if process["alive"] else "[red]dead[/red]"
        processes.add_row(process["name"], str(process["pid"]), state, process["url"] or "")
    console.print(processes)
    console.print(
        f"chain {report['chain_id']} at {report['rpc_url']}, head block {report['head']}; "
        f"workerpool {report['workerpool']}"
    )
    accounts = Table("role", "wallet", "free", "locked", "score", title="balances in DCLD")
    accounts.add_column("address", no_wrap=True, min_width=42)
    for account in report["accounts"]:
        accounts.add_row(
            account["role"],
            *(_tokens(account[field]) for field in ("wallet", "free", "locked")),
            str(account["score"]),
            account["address"],
        )
    console.print(accounts)
    _show_offers(console, report)


def _show_offers(console: Console, report: dict[str, Any]) -> None:
    """The sample apps and the orders `up` published, or why a sample app is missing."""
    if report["apps"]:
        apps = Table("app", "type", "module", title="sample apps (the config file's \\[apps])")
        apps.add_column("address", no_wrap=True, min_width=42)
        for app in report["apps"]:
            apps.add_row(app["name"], app["type"] or "?", app["multiaddr"] or "?", app["address"])
        console.print(apps)
    for name, problem in report["missing_apps"].items():
        console.print(f"no sample app {name}: {problem}", style="yellow", markup=False)
    if report["orders"]:
        orders = Table(
            "kind", "of", "category", "trust", "price (DCLD)", "remaining", "status",
            title="orders on the market",
        )  # fmt: skip
        for order in report["orders"]:
            orders.add_row(
                order["kind"] or "?",
                order["name"] or order["resource"] or order["order_hash"],
                _optional_text(order["category"]),
                _optional_text(order["trust"]),
                _tokens(order["price"]) if order["price"] is not None else "",
                _optional_text(order["remaining"]),
                order["status"] or "[red]the market does not answer[/red]",
            )
        console.print(orders)


def _optional_text(value: int | None) -> str:
    return "" if value is None else str(value)


def _tokens(amount: int) -> str:
    return f"{Decimal(amount) / _TOKEN:,f}"
