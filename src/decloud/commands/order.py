"""`decloud order init|sign|publish|show|unpublish|cancel`: order files for the resources a
wallet owns, and their life on the market.

`init` writes an order file, `sign` signs it (`decloud.sdk.orders` reads and writes them),
`publish` puts files on the market, signed or not (then the wallet signs them), `show`
reads a published order back, `unpublish` takes orders off the book, and `cancel` closes an
order on-chain. The market is the config's [services] market, or `--market URL`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_utils.address import to_checksum_address

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    MarketOption,
    WalletOption,
    market_errors,
    market_url,
    print_fields,
    print_json,
    reading,
    reports_errors,
    say,
    signing,
    unlock,
    warn,
)
from decloud.market.book import AnyOrder
from decloud.market.client import MarketClient, MarketError
from decloud.market.models import OrderKind
from decloud.market.schemas import PublishedOrder
from decloud.protocol.orders import SignatureError, recover_signer
from decloud.sdk.errors import DecloudError, NotOwner, OrderFileError, chain_errors
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

app = typer.Typer(
    help="Write, sign, publish, show, unpublish and cancel orders.", no_args_is_help=True
)


class TemplateKind(StrEnum):
    """The orders that sell a resource."""

    APP = "app"
    DATASET = "dataset"
    WORKERPOOL = "workerpool"


OrderFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="Order file (`order init` writes one)")
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output file")]


@app.command("init")
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


@app.command("sign")
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


@app.command("publish")
@reports_errors
def publish(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="Order files: signed (`order sign` wrote them) or not (`order init`)",
            show_default=False,
            metavar="FILE",
        ),
    ],
    presigned: Annotated[
        bool,
        typer.Option(
            "--presigned",
            help="Publish unsigned orders without a signature: their owner presigned them on-chain",
        ),
    ] = False,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish orders on the market. A signed file is published as it is, once its
    signature is checked to be the owner's; an unsigned one is signed with the wallet
    first. Several files go in batches; each is accepted or refused on its own."""
    url = market_url(config, market)
    loaded = [_Publishable.read(path) for path in files]
    signed_files = [str(item.path) for item in loaded if item.signature is not None]
    if presigned and signed_files:
        raise DecloudError(
            f"--presigned publishes unsigned orders, and these files are signed: "
            f"{', '.join(signed_files)}",
            "leave out --presigned, or give the unsigned order files",
        )
    needs_wallet = not presigned and len(signed_files) < len(loaded)
    orders = Orders(signing(config, wallet) if needs_wallet else reading(config))
    signatures = [_signature(orders, item, presigned) for item in loaded]
    with market_errors(url), MarketClient(url) as client:
        _check_same_network(client, orders, url)
        signed = [
            (item.order, signature) for item, signature in zip(loaded, signatures, strict=True)
        ]
        outcomes = _publish_each(client, signed)
    published: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for item, outcome in zip(loaded, outcomes, strict=True):
        if isinstance(outcome, MarketError):
            refused.append({"file": str(item.path), "rule": outcome.rule, "detail": outcome.detail})
        else:
            published.append({"file": str(item.path), **outcome.model_dump(mode="json")})
    if as_json:
        print_json({"published": published, "refused": refused})
    else:
        for done in published:
            say(f"published {done['kind']} order {done['order_hash']} ({done['file']})")
        for refusal in refused:
            warn(f"refused {refusal['file']}: {refusal['detail']} [{refusal['rule']}]")
    if refused:
        raise typer.Exit(1)


@app.command("show")
@reports_errors
def show(
    order_hash: Annotated[str, typer.Argument(help="Hash of the order (0x, 32 bytes)")],
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """One published order and its state on the market."""
    url = market_url(config, market)
    with market_errors(url), MarketClient(url) as client:
        found = client.show(order_hash)
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    print_fields(f"{found.kind.value} order {found.order_hash}", _published_rows(found))


@app.command("unpublish")
@reports_errors
def unpublish(
    order_hashes: Annotated[
        list[str] | None,
        typer.Argument(help="Hashes of the orders to remove", metavar="HASH", show_default=False),
    ] = None,
    all_orders: Annotated[
        bool, typer.Option("--all", help="Remove every order of the wallet")
    ] = False,
    kind: Annotated[
        OrderKind | None,
        typer.Option(help="With --all: only the orders of this kind", show_default=False),
    ] = None,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    market: MarketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove orders of the wallet from the market's book. They stay valid on-chain: `order
    cancel` closes one for good."""
    if bool(order_hashes) == all_orders:
        raise typer.BadParameter("give the hashes of the orders to remove, or --all")
    if kind is not None and not all_orders:
        raise typer.BadParameter("--kind goes with --all")
    url = market_url(config, market)
    key = unlock(config, wallet).private_key
    removed: list[str] = []
    refused: list[dict[str, Any]] = []
    with market_errors(url), MarketClient(url) as client:
        if all_orders:
            removed = client.unpublish_all(key, kind)
        for order_hash in order_hashes or []:
            try:
                removed += client.unpublish(order_hash, key)
            except MarketError as error:
                if error.rule is None:
                    raise
                refused.append(
                    {"order_hash": order_hash, "rule": error.rule, "detail": error.detail}
                )
    if as_json:
        print_json({"removed": removed, "refused": refused})
    else:
        say(f"removed {len(removed)} order(s) from the book")
        for order_hash in removed:
            say(order_hash)
        for refusal in refused:
            warn(f"refused {refusal['order_hash']}: {refusal['detail']} [{refusal['rule']}]")
    if refused:
        raise typer.Exit(1)


@app.command("cancel")
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


@dataclass(frozen=True)
class _Publishable:
    """An order file to publish, and its signature if it holds one."""

    path: Path
    order: AnyOrder
    signature: bytes | None

    @classmethod
    def read(cls, path: Path) -> _Publishable:
        order = read_order_file(path)
        text = json.loads(path.read_text()).get("signature")
        if text is None:
            return cls(path, order, None)
        # 65 bytes as `order sign` writes them, or 64 (EIP-2098) from another wallet.
        if not isinstance(text, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2}){64,65}", text):
            raise OrderFileError(
                f"the signature in {path} is not 64 or 65 bytes of 0x-hex: {text!r}",
                "sign the order again: `decloud order sign FILE`",
            )
        return cls(path, order, bytes.fromhex(text[2:]))


def _signature(orders: Orders, item: _Publishable, presigned: bool) -> bytes:
    """The signature to publish `item` with: its own, once checked; the wallet's; or none
    for a presigned order."""
    if item.signature is None:
        return b"" if presigned else orders.sign(item.order).signature
    _check_signed_by_owner(orders, item.path, item.order, item.signature)
    return item.signature


def _check_signed_by_owner(orders: Orders, path: Path, order: AnyOrder, signature: bytes) -> None:
    connection = orders.connection
    owner = orders.owner_of(order)
    with chain_errors():
        owner_code = connection.client.w3.eth.get_code(to_checksum_address(owner))
    if owner_code:
        # A contract's signature is its own rule (ERC-1271): the market asks it.
        return
    try:
        signer = recover_signer(order.digest(connection.hub.domain), signature)
    except SignatureError as error:
        raise OrderFileError(
            f"the signature in {path} is not valid: {error}",
            "sign the order again: `decloud order sign FILE`",
        ) from error
    if signer != owner:
        raise NotOwner(
            f"the signature in {path} is not the owner's: the order belongs to {owner}, "
            f"the signature recovers {signer}",
            "sign it with the owner's wallet (`decloud order sign FILE --wallet NAME`); a "
            "file signed for another chain or hub recovers another address too",
        )


def _check_same_network(client: MarketClient, orders: Orders, url: str) -> None:
    """Orders are signed for the config's chain and hub: a market of another network would
    refuse every one of them, for a reason less plain than this."""
    market, ours = client.domain(), orders.connection.hub.domain
    if (market.chain_id, market.verifying_contract.lower()) != (
        ours.chain_id,
        ours.verifying_contract.lower(),
    ):
        raise DecloudError(
            f"the market at {url} serves chain {market.chain_id}, hub "
            f"{market.verifying_contract}; the config is for chain {ours.chain_id}, hub "
            f"{ours.verifying_contract}",
            "point --market (or [services] market) at the market of the config's network",
        )


def _publish_each(
    client: MarketClient, signed: list[tuple[AnyOrder, bytes]]
) -> list[PublishedOrder | MarketError]:
    """One outcome per order; one order goes alone, several through the batch endpoint."""
    if len(signed) > 1:
        return client.publish_many(signed)
    try:
        return [client.publish(*signed[0])]
    except MarketError as error:
        if error.rule is None:
            raise
        return [error]


def _published_rows(found: PublishedOrder) -> list[tuple[str, Any]]:
    status = found.status.value + (f" ({found.dead_reason})" if found.dead_reason else "")
    return [
        ("status", status),
        ("owner", found.owner),
        ("remaining", f"{found.remaining} of {found.volume}"),
        ("price", found.price),
        ("published at", found.published_at.isoformat(timespec="seconds")),
        *found.order.model_dump().items(),
        ("signature", found.signature),
    ]
