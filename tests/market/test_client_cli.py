"""The SDK and the CLI against `decloud market run` in its own process, on loopback.

The CLI finds the market in its config file and signs with the wallets of a keystore, as
a person's `decloud` does."""

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
from typing import Any

import httpx
import pytest

from decloud.chain.localnet import LocalMarket
from decloud.market.book import AnyOrder
from decloud.market.client import MarketClient, MarketError, NoCompatibleOrder
from decloud.market.models import OrderKind
from decloud.protocol.orders import sign_typed
from decloud.sdk.config import ChainSettings, ClientConfig, ServiceUrls, WalletSettings
from decloud.sdk.orders import order_json
from decloud.sdk.wallet import Keystore
from tests.market.conftest import match, orders
from tests.sdk.conftest import Cli, cli_runner, no_secret_in
from tests.wallets import keystore_of

PASSWORD = "market tests only"
WALLETS = ("pool_owner", "requester", "stranger")


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


@pytest.fixture(scope="module")
def keystore(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Keystore:
    """A wallet per party, named after it (light scrypt: unlocking is instant)."""
    return keystore_of(local, WALLETS, tmp_path_factory.mktemp("home") / "keystore", PASSWORD)


def _config(local: LocalMarket, keystore: Keystore, market: str | None, path: Path) -> Path:
    config = ClientConfig(
        chain=ChainSettings(rpc_url=local.rpc_url, chain_id=local.deployment.chain_id),
        contracts=local.deployment,
        services=ServiceUrls(market=market),
        wallet=WalletSettings(keystore=keystore.directory),
    )
    return config.save(path)


@pytest.fixture(scope="module")
def config_file(
    local: LocalMarket,
    keystore: Keystore,
    market_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A config naming the chain, the contracts, the market and the keystore."""
    return _config(local, keystore, market_url, tmp_path_factory.mktemp("config") / "config.toml")


@pytest.fixture
def cli(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`decloud` with the config; the wallets' password in the environment."""
    for variable in ("DECLOUD_CONFIG", "DECLOUD_WALLET", "DECLOUD_WALLET_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    return cli_runner({"DECLOUD_CONFIG": str(config_file), "DECLOUD_WALLET_PASSWORD": PASSWORD})


def _order_file(path: Path, order: AnyOrder) -> Path:
    path.write_text(json.dumps(order_json(order)))
    return path


def _json(result: Any) -> Any:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_the_cli_publishes_shows_lists_and_unpublishes(
    cli: Cli, market_url: str, local: LocalMarket, tmp_path: Path
) -> None:
    _, pool, _ = orders(local)
    order_file = _order_file(tmp_path / "order.json", pool)

    published = cli("order", "publish", str(order_file), "--json", wallet="pool_owner")
    assert published.exit_code == 0, published.output
    [order] = _json(published)["published"]
    assert (order["file"], order["owner"]) == (str(order_file), local["pool_owner"].address)
    no_secret_in(published, local["pool_owner"].key)

    shown = cli("order", "show", order["order_hash"], "--json")
    assert _json(shown)["status"] == "open"
    people = cli("order", "show", order["order_hash"])
    assert people.exit_code == 0 and "open" in people.stdout

    listed = cli("orderbook", "workerpool", "--category", "0", "--min-trust", "50", "--json")
    assert listed.exit_code == 0, listed.output
    assert order["order_hash"] in [o["order_hash"] for o in _json(listed)["orders"]]

    again = cli("order", "publish", str(order_file), wallet="pool_owner")
    assert again.exit_code == 1
    assert "order.duplicate" in again.stderr and str(order_file) in again.stderr

    removed = cli(
        "order", "unpublish", "--all", "--kind", "workerpool", "--json", wallet="pool_owner"
    )
    assert removed.exit_code == 0, removed.output
    assert order["order_hash"] in _json(removed)["removed"]
    with MarketClient(market_url) as client:
        owner = local["pool_owner"].address
        assert not list(client.iter_orderbook(OrderKind.WORKERPOOL, owner=owner))


def test_a_signed_file_is_published_as_signed_without_unlocking_a_wallet(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    _, pool, _ = orders(local)
    signed = cli(
        "order", "sign", str(_order_file(tmp_path / "pool.json", pool)), wallet="pool_owner"
    )
    assert signed.exit_code == 0, signed.output
    signed_file = tmp_path / "pool.signed.json"

    published = cli(
        "order", "publish", str(signed_file), "--json", env={"DECLOUD_WALLET_PASSWORD": ""}
    )
    assert published.exit_code == 0, published.output
    [order] = _json(published)["published"]
    on_file = json.loads(signed_file.read_text())
    assert (order["order_hash"], order["signature"]) == (
        on_file["order_hash"],
        on_file["signature"],
    )


def test_several_files_go_in_one_call_and_each_is_accepted_or_refused_alone(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    _, pool, _ = orders(local)
    unsigned = _order_file(tmp_path / "pool.json", pool)
    assert cli("order", "sign", str(unsigned), wallet="pool_owner").exit_code == 0
    other_pool = _order_file(tmp_path / "other.json", replace(pool, salt=local.next_salt()))
    files = [tmp_path / "pool.signed.json", other_pool, unsigned]

    result = cli("order", "publish", *map(str, files), "--json", wallet="pool_owner")

    assert result.exit_code == 1, result.output
    outcome = _json(result)
    assert [o["file"] for o in outcome["published"]] == [str(f) for f in files[:2]]
    assert [(r["file"], r["rule"]) for r in outcome["refused"]] == [
        (str(unsigned), "order.duplicate")
    ]


def test_a_signature_that_is_not_the_owners_is_refused_before_anything_is_sent(
    cli: Cli, market_url: str, local: LocalMarket, tmp_path: Path
) -> None:
    _, pool, _ = orders(local)
    with MarketClient(market_url) as client:
        domain = client.domain()
    forged = {
        **order_json(pool),
        "signature": "0x" + sign_typed(pool, domain, local["stranger"].key).hex(),
    }
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))

    result = cli("order", "publish", str(path))

    assert result.exit_code == 1
    assert "is not the owner's" in result.stderr
    assert local["stranger"].address in result.stderr
    assert "what to do: sign it with the owner's wallet" in result.stderr
    with MarketClient(market_url) as client, pytest.raises(MarketError) as unknown:
        client.show("0x" + pool.digest(domain).hex())
    assert unknown.value.rule == "order.not_found"


def test_unpublishing_by_hash_signs_with_the_wallet_and_a_stranger_is_refused(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    _, pool, _ = orders(local)
    published = cli(
        "order",
        "publish",
        str(_order_file(tmp_path / "o.json", pool)),
        "--json",
        wallet="pool_owner",
    )
    [order] = _json(published)["published"]

    by_stranger = cli("order", "unpublish", order["order_hash"], "--json", wallet="stranger")
    assert by_stranger.exit_code == 1
    [refusal] = _json(by_stranger)["refused"]
    assert refusal["order_hash"] == order["order_hash"]
    no_secret_in(by_stranger, local["stranger"].key)

    by_owner = cli("order", "unpublish", order["order_hash"], wallet="pool_owner")
    assert by_owner.exit_code == 0, by_owner.output
    assert order["order_hash"] in by_owner.stdout
    assert "[order.not_found]" in cli("order", "show", order["order_hash"]).stderr


def test_an_order_presigned_on_chain_is_published_without_a_signature(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    _, pool, _ = orders(local)
    local["pool_owner"].hub.presign_order(pool)

    result = cli(
        "order", "publish", str(_order_file(tmp_path / "o.json", pool)), "--presigned", "--json"
    )

    assert result.exit_code == 0, result.output
    assert _json(result)["published"][0]["signature"] == "0x"


def test_the_market_is_the_configs_unless_market_names_another(
    cli: Cli, local: LocalMarket, keystore: Keystore, tmp_path: Path
) -> None:
    without = _config(local, keystore, None, tmp_path / "no-market.toml")

    unnamed = cli("orderbook", "app", env={"DECLOUD_CONFIG": str(without)})
    assert unnamed.exit_code == 1
    assert "names no market" in unnamed.stderr
    assert "what to do: add `market = URL` to its [services] table" in unnamed.stderr

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = cli("order", "show", "0x" + "11" * 32, "--market", closed)
    assert unreachable.exit_code == 1
    assert "unreachable" in unreachable.stderr and closed in unreachable.stderr

    missing = cli("order", "show", "0x" + "11" * 32)
    assert missing.exit_code == 1
    assert "[order.not_found]" in missing.stderr
