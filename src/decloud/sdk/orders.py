"""Orders as files: write a template, sign it, cancel it on-chain.

An order file is the JSON the market takes (`decloud order publish`):
`{"kind": "app", "order": {...the EIP-712 message...}}`. Signing adds `order_hash` (the
EIP-712 digest in the hub's domain, which the marketplace tracks the order by), `signer`
and `signature` (65 bytes, as `eth_signTypedData_v4` makes it). Only the owner of the
resource an order sells (or the requester of a request order) can sign or cancel it: both
are checked here before anything is signed or sent, so a wrong wallet is said plainly.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decloud.market.book import ZERO_ADDRESS, AnyOrder, kind_of
from decloud.market.client import order_from_json
from decloud.market.models import OrderKind
from decloud.protocol.orders import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder
from decloud.protocol.tags import NO_TAG, TEE
from decloud.sdk.app_developer import AppDeveloper
from decloud.sdk.connection import Connection, Transaction
from decloud.sdk.dataset_owner import DatasetOwner
from decloud.sdk.errors import DecloudError, NotOwner, OrderFileError, chain_errors
from decloud.sdk.workerpool_owner import WorkerpoolOwner

RESOURCE_VOLUME = 1_000_000
"""Default volume of app and dataset orders: in practice unlimited, as iExec's."""
WORKERPOOL_VOLUME = 1_000
"""Default volume of a workerpool order: the tasks the pool commits to at this price."""
WORKERPOOL_TRUST = 3
"""Default trust a workerpool serves: a result confirmed by two agreeing fresh workers."""


@dataclass(frozen=True)
class OrderTerms:
    """What an order template asks; None leaves the default of its kind."""

    price: int = 0
    volume: int | None = None
    tag: bytes | None = None
    category: int = 0
    trust: int = WORKERPOOL_TRUST


@dataclass(frozen=True)
class SignedOrder:
    order: AnyOrder
    order_hash: bytes
    signer: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            **order_json(self.order),
            "order_hash": "0x" + self.order_hash.hex(),
            "signer": self.signer,
            "signature": "0x" + self.signature.hex(),
        }


@dataclass(frozen=True)
class CancelledOrder:
    order: AnyOrder
    order_hash: bytes
    transaction: Transaction

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": kind_of(self.order).value,
            "order_hash": "0x" + self.order_hash.hex(),
            "transaction": self.transaction.to_json(),
        }


def order_json(order: AnyOrder) -> dict[str, Any]:
    """The file form of an unsigned order."""
    return {"kind": kind_of(order).value, "order": order.to_message()}


def read_order_file(path: Path) -> AnyOrder:
    """The order in a file written by `order init` or `order sign` (or by hand)."""
    try:
        return order_from_json(json.loads(path.read_text()))
    except OSError as error:
        raise OrderFileError(f"cannot read the order file {path}: {error}") from error
    except (KeyError, TypeError, ValueError) as error:
        raise OrderFileError(
            f"{path} is not a decloud order: {error}",
            'an order file is {"kind": "app|dataset|workerpool|request", "order": {...}}; '
            "`decloud order init` writes one",
        ) from error


def write_json_file(path: Path, document: dict[str, Any], *, overwrite: bool = False) -> None:
    """Write `document`; an existing file is kept unless `overwrite`: it may hold edits."""
    if path.exists() and not overwrite:
        raise DecloudError(f"{path} already exists", "choose another --output, or pass --force")
    path.write_text(json.dumps(document, indent=2) + "\n")


class Orders:
    """Order templates, signatures and cancellations, as the connection's wallet."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def template(self, kind: OrderKind, resource: str, terms: OrderTerms) -> AnyOrder:
        """An order selling `resource` (an app, dataset or workerpool the wallet owns), with
        a fresh salt and no restrictions; an app with an enclave fingerprint asks for TEE."""
        anyone, salt, volume = ZERO_ADDRESS, secrets.token_bytes(32), terms.volume
        if kind is OrderKind.APP:
            app = AppDeveloper(self.connection).show(resource)
            self._require_owner(app.owner, f"app {app.app.address}")
            return AppOrder(
                app=app.app.address, appprice=terms.price, volume=volume or RESOURCE_VOLUME,
                tag=_tag(terms.tag, TEE if app.app.tee else NO_TAG), datasetrestrict=anyone,
                workerpoolrestrict=anyone, requesterrestrict=anyone, salt=salt,
            )  # fmt: skip
        if kind is OrderKind.DATASET:
            dataset = DatasetOwner(self.connection).show(resource)
            self._require_owner(dataset.owner, f"dataset {dataset.dataset.address}")
            return DatasetOrder(
                dataset=dataset.dataset.address, datasetprice=terms.price,
                volume=volume or RESOURCE_VOLUME, tag=_tag(terms.tag, NO_TAG),
                apprestrict=anyone, workerpoolrestrict=anyone, requesterrestrict=anyone,
                salt=salt,
            )  # fmt: skip
        if kind is OrderKind.WORKERPOOL:
            pool = WorkerpoolOwner(self.connection).show(resource)
            self._require_owner(pool.owner, f"workerpool {pool.workerpool.address}")
            return WorkerpoolOrder(
                workerpool=pool.workerpool.address, workerpoolprice=terms.price,
                volume=volume or WORKERPOOL_VOLUME, tag=_tag(terms.tag, NO_TAG),
                category=terms.category, trust=terms.trust, apprestrict=anyone,
                datasetrestrict=anyone, requesterrestrict=anyone, salt=salt,
            )  # fmt: skip
        raise DecloudError(
            f"no template for {kind.value} orders",
            "templates are for app, dataset and workerpool orders; write a request by hand",
        )

    def sign(self, order: AnyOrder) -> SignedOrder:
        """The order signed by the wallet, which must be the one entitled to sign it."""
        wallet = self.connection.require_wallet()
        self._check_signer(order)
        hub = self.connection.hub
        signature = hub.sign(order, wallet.private_key)
        return SignedOrder(order, order.digest(hub.domain), wallet.address, signature)

    def cancel(self, order: AnyOrder) -> CancelledOrder:
        """Close the order on-chain: no deal can use it any more, wherever it is published."""
        self._check_signer(order)
        hub = self.connection.hub
        with chain_errors(self.connection.address):
            receipt = hub.close_order(order)
        return CancelledOrder(order, order.digest(hub.domain), Transaction.of(receipt))

    def owner_of(self, order: AnyOrder) -> str:
        """Who may sign or cancel the order: the owner of what it sells, or the requester."""
        with chain_errors():
            match order:
                case AppOrder():
                    return self.connection.apps.owner_of(order.app)
                case DatasetOrder():
                    return self.connection.datasets.owner_of(order.dataset)
                case WorkerpoolOrder():
                    return self.connection.workerpools.owner_of(order.workerpool)
                case RequestOrder():
                    return order.requester

    def _check_signer(self, order: AnyOrder) -> None:
        self._require_owner(self.owner_of(order), f"this {kind_of(order).value} order")

    def _require_owner(self, owner: str, what: str) -> None:
        wallet = self.connection.address
        if owner != wallet:
            raise NotOwner(
                f"{what} belongs to {owner}, not to wallet {wallet}",
                "use the owner's wallet (`--wallet NAME`)",
            )


def _tag(asked: bytes | None, default: bytes) -> bytes:
    return default if asked is None else asked
