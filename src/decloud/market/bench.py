"""`decloud bench market`: publish throughput and query latency of the orderbook.

- `publish_per_s`: signed workerpool orders published one after another through the HTTP
  API (in process), every rule checked against a real anvil: signature, ownership, consumed
  volume, the owner's stake.
- `query_ms`: p50 and p99 of workerpool-book queries (category, minimum trust, tag, page of
  20) with `open_orders` open orders in a throwaway PostgreSQL, answered through the API.

Targets (issue 4): publish_per_s >= 1,000; query p99 <= 20 ms.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from fastapi.testclient import TestClient

from decloud.chain.anvil import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.market.admission import Admitted
from decloud.market.api import create_app
from decloud.market.book import ZERO_ADDRESS
from decloud.market.chain import MarketChain
from decloud.market.service import migrate_market
from decloud.market.settings import MarketSettings
from decloud.market.store import new_row
from decloud.protocol.orders import WorkerpoolOrder, sign_typed
from decloud.service.db import Database
from decloud.service.postgres import postgres_cluster

TARGETS = {"publish_per_s": 1_000, "query_p99_ms": 20}
_BATCH = 5_000


def run(open_orders: int = 100_000, publishes: int = 500, queries: int = 300) -> dict[str, Any]:
    """Measure on a fresh anvil and PostgreSQL; the report as a JSON-ready dict."""
    with Anvil() as node, postgres_cluster() as cluster:
        local = LocalMarket.create(node.rpc_url, list(node.private_keys), ["pool_owner"])
        database = Database(cluster.new_database())
        migrate_market(database)
        settings = MarketSettings(
            database_url="postgresql://", max_open_orders_per_owner=publishes + 1
        )
        app = create_app(settings, database, MarketChain(node.rpc_url, local.deployment),
                         run_sync=False)  # fmt: skip
        with TestClient(app) as http:
            publish_per_s = _publish_rate(http, local, publishes)
            _fill_book(database, local, open_orders)
            latencies = _query_latencies(http, queries)
        database.dispose()
    percentiles = statistics.quantiles(latencies, n=100)
    p50, p99 = percentiles[49], percentiles[98]
    return {
        "publish_per_s": round(publish_per_s, 1),
        "query_ms": {"p50": round(p50, 2), "p99": round(p99, 2)},
        "open_orders": open_orders,
        "publishes": publishes,
        "queries": queries,
        "database": "postgresql",
        "targets": TARGETS,
    }


def _pool_order(local: LocalMarket, rng: random.Random) -> WorkerpoolOrder:
    return WorkerpoolOrder(
        workerpool=local.workerpool,
        workerpoolprice=rng.randrange(1, 10**6),
        volume=rng.randrange(1, 1_000),
        tag=rng.choice((0, 1, 256, 257)).to_bytes(32, "big"),
        category=rng.randrange(5),
        trust=rng.choice((1, 3, 5, 10, 100)),
        apprestrict=ZERO_ADDRESS,
        datasetrestrict=ZERO_ADDRESS,
        requesterrestrict=ZERO_ADDRESS,
        salt=rng.randbytes(32),
    )


def _publish_rate(http: TestClient, local: LocalMarket, count: int) -> float:
    """Orders are signed beforehand: the rate is the market's, not the signer's."""
    rng = random.Random(1)
    owner = local["pool_owner"]
    domain = owner.hub.domain
    bodies = []
    for _ in range(count):
        order = _pool_order(local, rng)
        bodies.append({
            "kind": "workerpool", "chain_id": domain.chain_id, "order": order.to_message(),
            "signature": "0x" + sign_typed(order, domain, owner.key).hex(),
        })  # fmt: skip
    start = time.perf_counter()
    for body in bodies:
        answer = http.post("/v1/orders", json=body)
        if answer.status_code != 201:
            raise RuntimeError(f"publish refused: {answer.json()}")
    return count / (time.perf_counter() - start)


def _fill_book(database: Database, local: LocalMarket, count: int) -> None:
    """Open orders written straight to the database: what matters is the size of the book
    the queries run against, not how it was filled."""
    rng = random.Random(2)
    owner = local["pool_owner"].address
    domain = local["pool_owner"].hub.domain
    for start in range(0, count, _BATCH):
        rows = []
        for _ in range(min(_BATCH, count - start)):
            order = _pool_order(local, rng)
            admitted = Admitted(order, order.digest(domain), owner, order.volume, 0)
            rows.append(new_row(admitted, b"\x00" * 65))
        with database.transaction() as session:
            session.add_all(rows)


def _query_latencies(http: TestClient, count: int) -> list[float]:
    rng = random.Random(3)
    latencies = []
    for _ in range(count):
        params = {
            "category": str(rng.randrange(5)),
            "min_trust": str(rng.choice((1, 3, 10, 100))),
            "min_tag": "0x" + rng.choice((0, 1, 256)).to_bytes(32, "big").hex(),
            "app": ZERO_ADDRESS,
            "limit": "20",
        }
        start = time.perf_counter()
        answer = http.get("/v1/orderbook/workerpool", params=params)
        latencies.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"query failed: {answer.json()}")
    return latencies
