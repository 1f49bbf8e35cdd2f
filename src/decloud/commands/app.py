"""`decloud app deploy|show`: register apps and read them from the app registry;
`decloud app run`: buy a run of an app, follow it, and download its verified result.

`app run` shows the orders chosen and the price, asks before it matches (unless `--yes`),
then follows each task with the live display of `decloud task show --watch` and downloads
its result. Exit status as `task show --watch`: 0 completed (and downloaded), 1 failed or
an error, 3 the timeout passed first (the task goes on: `decloud task show` follows it).
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from decloud.chain.registries import AppType
from decloud.commands import task
from decloud.commands.common import (
    EXIT_FAILED,
    ConfigOption,
    JsonOption,
    WalletOption,
    console,
    print_fields,
    print_json,
    reading,
    reports_errors,
    say,
    signing,
)
from decloud.sdk.app_developer import AppDeveloper, AppInfo
from decloud.sdk.errors import DecloudError
from decloud.sdk.execution import Quote, RunStarted
from decloud.sdk.requester import Requester
from decloud.sdk.values import parse_bytes32, parse_hex

RESULTS_DIR = Path("decloud-results")
"""Where `app run` puts results by default: one directory per task, named by its id."""

app = typer.Typer(
    help="Register apps, show them, and buy runs of them (app run).", no_args_is_help=True
)


class AppTypeName(StrEnum):
    """The runtimes, by the names people type."""

    WASM = "WASM"
    OCI = "OCI"


Checksum = Annotated[
    str | None,
    typer.Option(help="sha256 to register, 0x-hex (or give --file to compute it)"),
]
ArtifactFile = Annotated[
    Path | None,
    typer.Option(
        "--file",
        exists=True,
        dir_okay=False,
        help="Compute the checksum from this file: the WASM module, or the OCI image saved "
        "as a docker-archive (`docker save`)",
    ),
]


@app.command("deploy")
@reports_errors
def deploy(
    name: Annotated[str, typer.Argument(help="Name, unique among the wallet's apps")],
    app_type: Annotated[AppTypeName, typer.Option("--type", help="Runtime of the app")],
    multiaddr: Annotated[
        str, typer.Option(help="Where workers get it: module URL or CID, or image reference")
    ],
    checksum: Checksum = None,
    file: ArtifactFile = None,
    mrenclave: Annotated[
        str, typer.Option(help="Enclave fingerprint (hex), for apps that run in a TEE")
    ] = "",
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an app owned by the wallet; its owner is paid the app price per task."""
    info = AppDeveloper(signing(config, wallet)).deploy(
        name,
        AppType[app_type.value],
        multiaddr,
        checksum=None if checksum is None else parse_bytes32(checksum, "the checksum"),
        artifact=file,
        mrenclave=parse_hex(mrenclave, "the enclave fingerprint"),
    )
    _print_app(info, as_json)


@app.command("show")
@reports_errors
def show(
    address: Annotated[str, typer.Argument(help="The app's address")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """An app's registration and owner."""
    _print_app(AppDeveloper(reading(config)).show(address), as_json)


@app.command("run")
@reports_errors
def run(
    app_name: Annotated[
        str,
        typer.Argument(metavar="APP", help="Its address, or its name in the config's apps table"),
    ],
    dataset: Annotated[str | None, typer.Option(help="Dataset address")] = None,
    args: Annotated[str, typer.Option(help="Arguments of the app")] = "",
    input_file: Annotated[
        list[str] | None, typer.Option(help="URL of an input file (repeat for several)")
    ] = None,
    trust: Annotated[int, typer.Option(min=0, help="Trust the result needs")] = 1,
    category: Annotated[int, typer.Option(min=0, help="Category (`decloud category list`)")] = 0,
    tag: Annotated[
        str | None, typer.Option(help="Capabilities needed: tee, gpu, tee,gpu or a 0x bytes32")
    ] = None,
    workerpool: Annotated[str | None, typer.Option(help="Run on this workerpool only")] = None,
    volume: Annotated[int, typer.Option(min=1, help="Number of tasks")] = 1,
    max_price: Annotated[
        int | None, typer.Option(min=0, help="Highest price of one task (app + dataset + pool)")
    ] = None,
    order: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True, dir_okay=False, help="Signed order file to use instead of the market"
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Match without asking")] = False,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Follow the tasks and download results")
    ] = True,
    download: Annotated[
        Path | None,
        typer.Option(
            help="Result directory (default ./decloud-results/TASKID); with several tasks, "
            "one sub-directory per task id",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0, help="Give up watching after S seconds")] = 600,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run an app: find compatible orders (cheapest first), show them and the price,
    match them once confirmed, follow the tasks live and download their verified results."""
    if as_json and not yes:
        raise DecloudError(
            "--json prints one document and cannot ask for confirmation",
            "add --yes to match without asking",
        )
    if watch and volume == 1 and download is not None and download.exists():
        # Said before paying: the download comes after the task ran.
        raise DecloudError(
            f"{download} already exists", "choose a new directory for the result (--download)"
        )
    requester = Requester(signing(config, wallet))
    quote = requester.quote(
        app_name, dataset=dataset, args=args, input_files=input_file or (), trust=trust,
        category=category, tag=tag, workerpool=workerpool, volume=volume,
        max_price=max_price, orders=order,
    )  # fmt: skip
    if not as_json:
        _print_quote(quote)
        if not yes and not typer.confirm("match these orders?", err=True):
            say("cancelled: nothing was sent")
            raise typer.Exit(EXIT_FAILED)
    started = requester.run(quote)
    if not as_json:
        _print_started(started)
    document: dict[str, Any] = {"quote": quote.to_json(), "deal": started.to_json(), "tasks": []}
    status = 0
    if watch:
        try:
            status = _follow_and_download(requester, started, download, timeout, as_json, document)
        except DecloudError as error:
            if not as_json:
                raise  # the deal and its tasks are printed already
            # The run is paid for: a script must still learn its deal and tasks.
            document["error"] = {"message": str(error), "advice": error.advice}
            status = EXIT_FAILED
    if as_json:
        print_json(document)
    raise typer.Exit(status)


def _follow_and_download(
    requester: Requester,
    started: RunStarted,
    download: Path | None,
    timeout: float,
    as_json: bool,
    document: dict[str, Any],
) -> int:
    """Follow each task, download each completed one; the worst exit status."""
    deadline = time.monotonic() + timeout
    status = 0
    for hex_id in started.taskids:
        left = max(deadline - time.monotonic(), 0.0)
        last, timed_out = task.follow(requester, hex_id, left, 1.0, live=not as_json)
        entry: dict[str, Any] = {"report": last.to_json(), "download": None}
        document["tasks"].append(entry)
        if not as_json:
            task.print_report(last, as_json=False)
        status = max(status, task.exit_status(last, timed_out))
        if last.chain_status != "completed":
            continue
        if download is None:
            destination = RESULTS_DIR / hex_id
        else:
            destination = download if len(started.taskids) == 1 else download / hex_id
        result = requester.download_result(hex_id, destination)
        entry["download"] = result.to_json()
        if not as_json:
            say(f"result of task {hex_id} in {result.path}", style="green")
            say(f"  digest {result.digest} (the one revealed on-chain), cid {result.cid}")
    return status


def _print_quote(quote: Quote) -> None:
    table = Table("order", "price per task", "from", title="orders chosen", title_justify="left")
    table.add_column("resource", overflow="fold")
    for chosen in quote.orders:
        table.add_row(chosen.kind.value, str(chosen.price), Text(chosen.source), chosen.resource)
    console().print(table)
    say(
        f"price: {quote.task_price} per task x {quote.volume} = {quote.total} "
        "(smallest token unit), locked in the hub when matched",
        style="bold",
    )


def _print_started(started: RunStarted) -> None:
    say(f"deal {started.dealid} (tx {started.transaction.tx_hash}, gas "
        f"{started.transaction.gas_used})", style="bold")  # fmt: skip
    for taskid in started.taskids:
        say(f"  task {taskid}")


def _print_app(info: AppInfo, as_json: bool) -> None:
    document = info.to_json()
    if as_json:
        print_json(document)
        return
    print_fields(f"app {document.pop('address')}", document.items())
