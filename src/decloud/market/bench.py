"""`decloud bench market`: publish throughput and query latency of the orderbook.

What runs is what users get: `decloud market run` (uvicorn, one process, the chain sync
polling beside it) in its own process, on a fresh anvil and a throwaway PostgreSQL whose book
already holds `open_orders` open workerpool orders, analyzed. The client is another process:
orders are signed and bodies encoded beforehand (the rates are the market's, not the
signer's), each of `connections` keep-alive HTTP/1.1 connections sends one request at a
time, and the figures are wall-clock time.

- `publish_per_s`: signed workerpool orders published through `POST /v1/orders/batch` in
  batches of `batch_size`; `publish.single_per_s`: the same through `POST /v1/orders`, one
  per request. Every order passes every rule: its EIP-712 digest, its ECDSA signature
  (recovered with coincurve), the workerpool's owner, the order's consumed volume, the
  owner's free balance against the stake, duplicates, the owner's open-order limit. The
  chain reads are made at the head block: anvil mines no block during the run, so the
  owner's code and balance are read once (as within one block of a live chain) while the
  consumed volume is read for every order.
- `query_ms`: p50 and p99 of `GET /v1/orderbook/workerpool` (category, minimum trust, tag,
  app, first page of 20) on one connection, timed from the request sent to the answer read.
- `host`: CPU count and 1-minute load average before and after: the figures are only as
  good as the share of the machine the run had.

Targets (issue 4): publish_per_s >= 1,000; query p99 <= 20 ms.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from eth_utils.address import to_checksum_address
from sqlalchemy import insert, text

from decloud.chain.anvil import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.market.admission import Admitted
from decloud.market.book import ZERO_ADDRESS
from decloud.market.hashing import order_digest
from decloud.market.models import OrderRow
from decloud.market.service import migrate_market
from decloud.market.store import new_columns
from decloud.protocol.orders import WorkerpoolOrder, sign_typed
from decloud.service.db import Database
from decloud.service.postgres import postgres_cluster

TARGETS = {"publish_per_s": 1_000, "query_p99_ms": 20}
SERVER_START_S = 60.0
_FILL_BATCH = 5_000
_FILL_OWNERS = 1_000
"""The book's orders belong to this many owners: no owner comes near the open-order limit."""


def run(
    open_orders: int = 100_000,
    publishes: int = 2_000,
    single_publishes: int = 500,
    batch_size: int = 50,
    connections: int = 1,
    queries: int = 300,
) -> dict[str, Any]:
    """Measure on a fresh anvil and PostgreSQL; the report as a JSON-ready dict."""
    load_before = round(os.getloadavg()[0], 2)
    with Anvil() as node, postgres_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        local = LocalMarket.create(node.rpc_url, list(node.private_keys), ["pool_owner"])
        database_url = cluster.new_database()
        _fill_book(database_url, local, open_orders)
        bodies = _signed_bodies(local, single_publishes + publishes)
        environment = _server_environment(
            node.rpc_url, local, database_url, Path(tmp), single_publishes + publishes
        )
        with _market_server(environment, Path(tmp)) as port:
            single = _publish_rate(port, "/v1/orders", bodies[:single_publishes], 1, connections)
            batched = _publish_rate(
                port, "/v1/orders/batch", bodies[single_publishes:], batch_size, connections
            )
            latencies = _query_latencies(port, queries)
    percentiles = statistics.quantiles(latencies, n=100)
    return {
        "publish_per_s": round(batched, 1),
        "query_ms": {"p50": round(percentiles[49], 2), "p99": round(percentiles[98], 2)},
        "open_orders": open_orders,
        "publish": {
            "endpoint": "POST /v1/orders/batch",
            "batch_size": batch_size,
            "connections": connections,
            "orders": publishes,
            "single_per_s": round(single, 1),
            "single_endpoint": "POST /v1/orders",
            "single_orders": single_publishes,
        },
        "query": {"endpoint": "GET /v1/orderbook/workerpool", "page": 20, "queries": queries},
        "server": "decloud market run (uvicorn, 1 process, chain sync on); client in another "
        "process, keep-alive HTTP/1.1, one request at a time per connection; queries on one",
        "database": "postgresql (throwaway cluster, fsync off)",
        "chain": "anvil, no block mined during the run",
        "host": {"cpus": os.cpu_count(), "load_1m": [load_before, round(os.getloadavg()[0], 2)]},
        "targets": TARGETS,
    }


def _pool_order(workerpool: str, rng: random.Random) -> WorkerpoolOrder:
    return WorkerpoolOrder(
        workerpool=workerpool,
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


def _fill_book(database_url: str, local: LocalMarket, count: int) -> None:
    """Open orders written straight to the database: what matters is the size of the book
    the queries and inserts run against, not how it was filled. They belong to owners of
    workerpools the chain does not know, whose events the chain sync never sees. The table
    is then analyzed, as autovacuum soon would: the planner chooses with real statistics."""
    database = Database(database_url)
    migrate_market(database)
    rng = random.Random(2)
    pools = [_address(rng) for _ in range(_FILL_OWNERS)]
    owners = [_address(rng) for _ in range(_FILL_OWNERS)]
    separator = local["pool_owner"].hub.domain.separator()
    for start in range(0, count, _FILL_BATCH):
        rows = []
        for index in range(start, min(start + _FILL_BATCH, count)):
            order = _pool_order(pools[index % _FILL_OWNERS], rng)
            owner = owners[index % _FILL_OWNERS]
            digest = order_digest(order, separator)
            rows.append(new_columns(Admitted(order, digest, owner, order.volume, 0, bytes(65))))
        with database.transaction() as session:
            session.execute(insert(OrderRow), rows)
    with database.transaction() as session:
        session.execute(text("ANALYZE market_orders"))
    database.dispose()


def _address(rng: random.Random) -> str:
    return str(to_checksum_address(rng.randbytes(20)))


def _signed_bodies(local: LocalMarket, count: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    owner = local["pool_owner"]
    domain = owner.hub.domain
    bodies = []
    for _ in range(count):
        order = _pool_order(local.workerpool, rng)
        bodies.append({
            "kind": "workerpool", "chain_id": domain.chain_id, "order": order.to_message(),
            "signature": "0x" + sign_typed(order, domain, owner.key).hex(),
        })  # fmt: skip
    return bodies


def _server_environment(
    rpc_url: str, local: LocalMarket, database_url: str, directory: Path, max_open: int
) -> dict[str, str]:
    """`decloud market run` configured by its environment variables only. Its chain sync
    starts at the current block: the book was filled without a history to replay."""
    deployment = directory / "deployment.json"
    local.deployment.save(deployment)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DECLOUD_")}
    return environment | {
        "DECLOUD_MARKET_DATABASE_URL": database_url,
        "DECLOUD_MARKET_RPC_URL": rpc_url,
        "DECLOUD_MARKET_DEPLOYMENT": str(deployment),
        "DECLOUD_MARKET_PORT": str(_free_port()),
        "DECLOUD_MARKET_MAX_OPEN_ORDERS_PER_OWNER": str(max_open + 1),
        "DECLOUD_MARKET_START_BLOCK": str(local.admin.w3.eth.block_number),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _market_server(environment: dict[str, str], directory: Path) -> Iterator[int]:
    """`decloud market run` in its own process until the block ends; its port."""
    port = int(environment["DECLOUD_MARKET_PORT"])
    command = [sys.executable, "-c", "from decloud.cli import main; main()", "market", "run"]
    with (directory / "market.log").open("wb") as log:
        server = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
        try:
            _wait_until_serving(server, port, directory / "market.log")
            yield port
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_until_serving(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the market server exited: {log.read_text()[-2000:]}")
        connection = _connect(port)
        try:
            if _request(connection, "GET", "/v1/info")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    raise RuntimeError(f"the market server did not answer within {SERVER_START_S} s")


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def _request(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body, headers)
    answer = connection.getresponse()
    return answer.status, answer.read()


def _publish_rate(
    port: int, path: str, bodies: list[dict[str, Any]], batch_size: int, connections: int
) -> float:
    """Orders per second through `path`, each connection sending its share of the requests
    one after another; every order must be published."""
    if batch_size == 1:
        payloads = [json.dumps(body).encode() for body in bodies]
    else:
        payloads = [
            json.dumps({"orders": bodies[start : start + batch_size]}).encode()
            for start in range(0, len(bodies), batch_size)
        ]
    shares = [payloads[lane::connections] for lane in range(connections)]
    with ThreadPoolExecutor(connections) as lanes:
        start = time.perf_counter()
        answers = list(lanes.map(lambda share: _post_all(port, path, share), shares))
        elapsed = time.perf_counter() - start
    for status, answer in (answer for share in answers for answer in share):
        _check_published(status, json.loads(answer), batch_size)
    return len(bodies) / elapsed


def _post_all(port: int, path: str, payloads: list[bytes]) -> list[tuple[int, bytes]]:
    connection = _connect(port)
    return [_request(connection, "POST", path, payload) for payload in payloads]


def _check_published(status: int, answer: Any, batch_size: int) -> None:
    if batch_size == 1 and status != 201:
        raise RuntimeError(f"publish refused: {answer}")
    if batch_size > 1:
        refused = [outcome["problem"] for outcome in answer["outcomes"] if outcome["problem"]]
        if status != 200 or refused:
            raise RuntimeError(f"batch publish refused: {refused or answer}")


def _query_path(rng: random.Random) -> str:
    """A query `decloud app run` makes: a category, a trust, a tag, an app, page one."""
    filters = {
        "category": rng.randrange(5),
        "min_trust": rng.choice((1, 3, 10, 100)),
        "min_tag": "0x" + rng.choice((0, 1, 256)).to_bytes(32, "big").hex(),
        "app": ZERO_ADDRESS,
        "limit": 20,
    }
    return f"/v1/orderbook/workerpool?{urlencode(filters)}"


def _query_latencies(port: int, count: int) -> list[float]:
    rng = random.Random(3)
    paths = [_query_path(rng) for _ in range(count)]
    connection = _connect(port)
    latencies = []
    for path in paths:
        start = time.perf_counter()
        status, answer = _request(connection, "GET", path)
        latencies.append((time.perf_counter() - start) * 1000)
        if status != 200:
            raise RuntimeError(f"query failed: {answer[:500]!r}")
    return latencies
