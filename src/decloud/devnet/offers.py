"""What a devnet offers on its market: the sample apps registered, and orders to buy with.

Right after `up`, a requester can run a sample app: `up` registers each sample app that
built (`decloud.devnet.samples`) in the app developer's name, then, once the market answers,
publishes through the market's HTTP API, signed by the owners' keys and checked by the
market's own rules, an app order for each sample app and a workerpool order of the devnet's
pool for each default category. A request then only has to name the app (the config file's
`[apps]` table) and a trust.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from decloud.chain.client import ChainClient
from decloud.chain.deploy import DEFAULT_CATEGORIES, Deployment
from decloud.chain.errors import ChainError
from decloud.chain.hub import ZERO_ADDRESS
from decloud.chain.registries import AppRegistry, AppType
from decloud.devnet.accounts import TOKEN, WORKERPOOL_DESCRIPTION
from decloud.devnet.samples import Built
from decloud.market.book import AnyOrder
from decloud.market.client import MarketClient, MarketError
from decloud.protocol.hub import MAX_TRUST, worker_weight
from decloud.protocol.orders import AppOrder, WorkerpoolOrder
from decloud.protocol.tags import NO_TAG

APP_PRICE = TOKEN // 100
"""0.01 DCLD per task to the app developer: visible in the balances after a task, and small
next to the 10,000 DCLD every role has deposited, so a requester can run thousands."""
WORKERPOOL_PRICE = TOKEN // 10
"""0.1 DCLD per task, in every category: ten times the app's, since it pays the scheduler
and the workers, who stake 30 % of it per contribution (0.03 DCLD: cheap for them too)."""
ORDER_VOLUME = 1_000_000
"""Tasks each order can serve: in practice unlimited, so that no devnet session uses an
order up. Only a deal's own volume (the smallest of its orders') locks any funds."""
MIN_OFFERED_TRUST = 3
"""The pool accepts requests up to trust 3 at least (the CLI's usual trust), even when it
runs fewer workers than a trust-3 consensus needs: such a task waits for more workers."""
_ORDER_FIELDS = (
    "kind", "resource", "name", "category", "trust", "price", "volume", "remaining", "status"
)  # fmt: skip
"""What `status` shows of each order `up` published."""


def register_apps(
    client: ChainClient, deployment: Deployment, built: Sequence[Built]
) -> dict[str, str]:
    """Register each sample app that built, owned by the client's account: its runtime, the
    `file://` URI of its module and the module's sha256; name -> address."""
    registry = AppRegistry(client, deployment.app_registry)
    apps: dict[str, str] = {}
    for sample in built:
        if sample.module is None:
            continue
        checksum = hashlib.sha256(sample.module.read_bytes()).digest()
        apps[sample.app.name] = registry.create_app(
            sample.app.name, AppType[sample.app.app_type], sample.module.as_uri(), checksum
        )
    return apps


def offered_trust(workers: int) -> int:
    """The highest trust `workers` fresh workers reach when they all agree, at least
    MIN_OFFERED_TRUST: more would accept tasks that can never reach consensus. Their group
    weighs w**workers and wins while group * T > (1 + group) * (T - 1), that is T <= group."""
    group: int = worker_weight(0) ** workers
    return max(MIN_OFFERED_TRUST, min(group, MAX_TRUST))


def app_orders(apps: Mapping[str, str]) -> list[AppOrder]:
    return [
        AppOrder(
            app=address,
            appprice=APP_PRICE,
            volume=ORDER_VOLUME,
            tag=NO_TAG,
            datasetrestrict=ZERO_ADDRESS,
            workerpoolrestrict=ZERO_ADDRESS,
            requesterrestrict=ZERO_ADDRESS,
            salt=secrets.token_bytes(32),
        )
        for address in apps.values()
    ]


def workerpool_orders(workerpool: str, workers: int) -> list[WorkerpoolOrder]:
    """One per default category, so that a request of any of them finds the pool."""
    return [
        WorkerpoolOrder(
            workerpool=workerpool,
            workerpoolprice=WORKERPOOL_PRICE,
            volume=ORDER_VOLUME,
            tag=NO_TAG,
            category=category,
            trust=offered_trust(workers),
            apprestrict=ZERO_ADDRESS,
            datasetrestrict=ZERO_ADDRESS,
            requesterrestrict=ZERO_ADDRESS,
            salt=secrets.token_bytes(32),
        )
        for category in range(len(DEFAULT_CATEGORIES))
    ]


def publish_orders(
    market_url: str,
    apps: Mapping[str, str],
    workerpool: str,
    workers: int,
    developer_key: str,
    owner_key: str,
) -> tuple[str, ...]:
    """Sign and publish the app orders (as the app developer) and the workerpool orders (as
    the workerpool owner) on the market; their order hashes. A refusal is a bug of the
    devnet: MarketError, with the market's rule."""
    signed: list[tuple[AnyOrder, str]] = [
        *((order, developer_key) for order in app_orders(apps)),
        *((order, owner_key) for order in workerpool_orders(workerpool, workers)),
    ]
    with MarketClient(market_url) as market:
        return tuple(market.sign_and_publish(order, key).order_hash for order, key in signed)


def apps_view(rpc_url: str, deployment_file: Path, apps: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each sample app as the app registry knows it (all but name and address None if the
    chain does not answer)."""
    registry: AppRegistry | None = None
    if deployment_file.exists():
        client = ChainClient(rpc_url, secrets.token_bytes(32))
        registry = AppRegistry(client, Deployment.load(deployment_file).app_registry)
    return [_app(registry, name, address) for name, address in apps.items()]


def _app(registry: AppRegistry | None, name: str, address: str) -> dict[str, Any]:
    view: dict[str, Any] = {"name": name, "address": address}
    try:
        app = registry.app(address) if registry else None
    except (ChainError, OSError, ValueError):
        app = None
    return view | {
        "type": app.app_type.name if app else None,
        "multiaddr": app.multiaddr if app else None,
        "checksum": "0x" + app.checksum.hex() if app else None,
    }


def orders_view(
    market_url: str | None,
    order_hashes: Sequence[str],
    apps: Mapping[str, str],
    workerpool: str | None,
) -> list[dict[str, Any]]:
    """Each order `up` published as the market sees it now (status None if there is no
    market or it does not answer), its resource named: the sample app, or the workerpool."""
    if market_url is None:
        return [_unknown(order_hash) for order_hash in order_hashes]
    names = {address: name for name, address in apps.items()}
    if workerpool is not None:
        names[workerpool] = WORKERPOOL_DESCRIPTION
    with MarketClient(market_url, timeout_s=2.0) as market:
        return [_order(market, order_hash, names) for order_hash in order_hashes]


def _order(market: MarketClient, order_hash: str, names: Mapping[str, str]) -> dict[str, Any]:
    try:
        published = market.show(order_hash)
    except MarketError:
        return _unknown(order_hash)
    message = published.order.model_dump()
    resource = str(message.get("app") or message.get("workerpool"))
    return _unknown(order_hash) | {
        "kind": published.kind.value,
        "resource": resource,
        "name": names.get(resource),
        "category": int(message["category"]) if "category" in message else None,
        "trust": int(message["trust"]) if "trust" in message else None,
        "price": int(published.price),
        "volume": int(published.volume),
        "remaining": int(published.remaining),
        "status": published.status.value,
    }


def _unknown(order_hash: str) -> dict[str, Any]:
    return {"order_hash": order_hash} | dict.fromkeys(_ORDER_FIELDS)
