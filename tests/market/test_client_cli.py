"""The SDK and the CLI against `decloud market run` in its own process, on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from decloud.chain.localnet import LocalMarket
from decloud.market.cli import app as order_cli
from decloud.market.cli import orderbook_app
from decloud.market.client import MarketClient, MarketError, NoCompatibleOrder
from decloud.market.models import OrderKind
from tests.market.conftest import match, orders


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def market_url(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`decloud market run` configured by a file and the environment, stopped by its PID."""
    directory = tmp_path_factory.mktemp("market")
    local.deployment.save(directory / "deployment.json")
    port = _free_port()
    deployment = directory / "deployment.json"
    (directory / "decloud.toml").write_text(
        f'[market]\nport = {port}\nsync_interval_s = 0.2\ndeployment = "{deployment}"\n'
    )
    env = os.environ | {
        "DECLOUD_CONFIG": str(directory / "decloud.toml"),
        "DECLOUD_MARKET_DATABASE_URL": f"sqlite:///{directory / 'market.db'}",
        "DECLOUD_MARKET_RPC_URL": local.rpc_url,
    }
    command = [
        sys.executable,
        "-c",
        "from decloud.market.cli import market_app; market_app()",
        "run",
    ]
    log = (directory / "market.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, directory / "market.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"market exited: {log.read_text()}")
        try:
            httpx.get(url + "/v1/info", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"market not up: {log.read_text()}")


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the market did not catch up with the chain"
        time.sleep(0.1)


def test_the_sdk_finds_the_cheapest_compatible_orders_and_follows_a_match(
    market_url: str, local: LocalMarket
) -> None:
    app, pool, request = orders(local)
    keys = {name: local[name].key for name in ("app_owner", "pool_owner", "requester")}
    with MarketClient(market_url) as client:
        client.sign_and_publish(replace(app, appprice=5), keys["app_owner"])
        cheap_app = client.sign_and_publish(replace(app, appprice=1), keys["app_owner"])
        cheap_pool = client.sign_and_publish(pool, keys["pool_owner"])
        dearer_pool = replace(
            pool, workerpoolprice=pool.workerpoolprice + 1, salt=local.next_salt()
        )
        client.sign_and_publish(dearer_pool, keys["pool_owner"])
        found = client.cheapest_compatible(request)
        assert (found.app.order_hash, found.workerpool.order_hash) == (
            cheap_app.order_hash,
            cheap_pool.order_hash,
        )
        assert found.task_price == 1 + pool.workerpoolprice

        chosen_app, chosen_pool, _ = found.orders()
        match(local, chosen_app, chosen_pool, request)
        _wait_for(lambda: client.show(cheap_app.order_hash).remaining == "9")

        with pytest.raises(NoCompatibleOrder, match="above the request's max price"):
            client.cheapest_compatible(replace(request, appmaxprice=0))
        with pytest.raises(NoCompatibleOrder, match="no open workerpool order"):
            client.cheapest_compatible(replace(request, category=4))
        with pytest.raises(MarketError) as refused:
            client.sign_and_publish(app, keys["requester"])
        assert refused.value.rule in ("order.duplicate", "signature.not_owner")


def test_the_cli_publishes_shows_lists_and_unpublishes(
    market_url: str, local: LocalMarket, tmp_path: Path
) -> None:
    runner = CliRunner()
    _, pool, _ = orders(local)
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps({"kind": "workerpool", "order": pool.to_message()}))
    key_file = tmp_path / "key"
    key_file.write_text(local["pool_owner"].key.hex())
    common = ["--market", market_url, "--json"]

    published = runner.invoke(
        order_cli, ["publish", str(order_file), "--key-file", str(key_file), *common]
    )
    assert published.exit_code == 0, published.output
    order_hash = json.loads(published.output)["order_hash"]

    shown = runner.invoke(order_cli, ["show", order_hash, *common])
    assert json.loads(shown.output)["status"] == "open"

    listed = runner.invoke(
        orderbook_app, ["workerpool", "--category", "0", "--min-trust", "50", *common]
    )
    assert listed.exit_code == 0, listed.output
    assert order_hash in [o["order_hash"] for o in json.loads(listed.output)["orders"]]

    again = runner.invoke(
        order_cli, ["publish", str(order_file), "--key-file", str(key_file), *common]
    )
    assert again.exit_code == 1
    assert "order.duplicate" in again.output

    removed = runner.invoke(
        order_cli,
        ["unpublish", "--all", "--kind", "workerpool", "--key-file", str(key_file), *common],
    )
    assert removed.exit_code == 0, removed.output
    assert order_hash in json.loads(removed.output)["removed"]
    with MarketClient(market_url) as client:
        assert not [
            o
            for o in client.iter_orderbook(OrderKind.WORKERPOOL, owner=local["pool_owner"].address)
        ]
