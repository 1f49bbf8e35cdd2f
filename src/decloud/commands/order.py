"""`decloud order init|sign|cancel`: order files for the resources a wallet owns.

They join the `order` group of the market's module (`publish`, `unpublish`, `show`): the
file `init` writes and `sign` signs is the one `decloud order publish` takes.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    WalletOption,
    print_fields,
    print_json,
    reading,
    reports_errors,
    say,
    signing,
)
from decloud.market.models import OrderKind
from decloud.sdk.orders import (
    RESOURCE_VOLUME,
    WORKERPOOL_TRUST,
    WORKERPOOL_VOLUME,
    Orders,
    OrderTerms,
    order_json,
    read_order_file,
    write_json_file,
)
from decloud.sdk.values import parse_tag


class TemplateKind(StrEnum):
    """The orders that sell a resource."""

    APP = "app"
    DATASET = "dataset"
    WORKERPOOL = "workerpool"


OrderFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="Order file (`order init` writes one)")
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output file")]


def add_order_commands(group: typer.Typer) -> None:
    """Add `init`, `sign` and `cancel` to the `decloud order` group."""
    group.command("init")(init)
    group.command("sign")(sign)
    group.command("cancel")(cancel)


@reports_errors
def init(
    kind: Annotated[TemplateKind, typer.Argument(help="What the order sells")],
    resource: Annotated[str, typer.Argument(help="Address of the app, dataset or workerpool")],
    price: Annotated[int, typer.Option(min=0, help="Price per task, smallest token unit")] = 0,
    volume: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Tasks it can be used for (default: {RESOURCE_VOLUME} for apps and "
            f"datasets, {WORKERPOOL_VOLUME} for workerpools)",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(
            help="Capabilities: tee, gpu, tee,gpu or a 0x bytes32 (default: tee for an app "
            "with an enclave fingerprint, else none)",
            show_default=False,
        ),
    ] = None,
    category: Annotated[int, typer.Option(min=0, help="Workerpool orders: category")] = 0,
    trust: Annotated[
        int, typer.Option(min=0, help="Workerpool orders: highest trust served")
    ] = WORKERPOOL_TRUST,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: KIND-order.json)"),
    ] = None,
    force: Force = False,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write an order template for a resource the wallet owns, with a fresh salt and no
    restrictions; edit the file for anything else, then `order sign` it."""
    terms = OrderTerms(
        price=price,
        volume=volume,
        tag=None if tag is None else parse_tag(tag),
        category=category,
        trust=trust,
    )
    orders = Orders(reading(config, wallet, as_wallet=True))
    order = orders.template(OrderKind(kind.value), resource, terms)
    path = output or Path(f"{kind.value}-order.json")
    document = order_json(order)
    write_json_file(path, document, overwrite=force)
    _print_order("written to", path, document, as_json)


@reports_errors
def sign(
    file: OrderFile,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: NAME.signed.json)"),
    ] = None,
    force: Force = False,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign an order with the wallet, in the hub's EIP-712 domain (the wallet must own the
    resource it sells, or be the request's requester)."""
    order = read_order_file(file)
    signed = Orders(signing(config, wallet)).sign(order)
    stem = file.name.removesuffix(".json").removesuffix(".signed")
    path = output or file.with_name(stem + ".signed.json")
    document = signed.to_json()
    write_json_file(path, document, overwrite=force)
    _print_order("signed, written to", path, document, as_json)


@reports_errors
def cancel(
    file: OrderFile,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close an order on-chain: no deal can use it any more, wherever it was published."""
    cancelled = Orders(signing(config, wallet)).cancel(read_order_file(file))
    if as_json:
        print_json(cancelled.to_json())
        return
    say(
        f"cancelled {cancelled.to_json()['order_hash']} in transaction "
        f"{cancelled.transaction.tx_hash}"
    )


def _print_order(done: str, path: Path, document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"file": str(path), **document})
        return
    signature = {k: v for k, v in document.items() if k not in ("kind", "order")}
    print_fields(f"{document['kind']} order", [*document["order"].items(), *signature.items()])
    say(f"{done} {path}")
