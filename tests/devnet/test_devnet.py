"""`decloud devnet up`, `status` and `down` as a person runs them: real anvil, real
services and workers, in a temporary home. The tests run in file order against one
devnet; the last one takes it down, and the fixture stops whatever is left, always."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from decloud.chain.anvil import dev_private_keys
from decloud.chain.client import ChainClient
from decloud.chain.compiler import cache_dir
from decloud.chain.deploy import DEFAULT_CATEGORIES, Deployment
from decloud.chain.hub import ZERO_ADDRESS, Hub
from decloud.chain.registries import AppRegistry, AppType, WorkerpoolRegistry
from decloud.devnet.accounts import DEPOSIT, DEVNET_PASSWORD, FUNDING
from decloud.devnet.offers import APP_PRICE, ORDER_VOLUME, WORKERPOOL_PRICE, offered_trust
from decloud.devnet.processes import ProcessRecord
from decloud.devnet.record import DevnetRecord
from decloud.market.client import MarketClient
from decloud.market.models import OrderKind
from decloud.protocol.orders import RequestOrder
from decloud.protocol.tags import NO_TAG

pytestmark = pytest.mark.anvil

WORKERS = 2
UP_BOUND_S = 60.0
"""Catches a hang, not a slow machine: the target (15 s) is measured and printed."""
UP_TARGET_S = 15.0
PROCESSES = {"anvil", "market", "storage", "scheduler", "worker-1", "worker-2"}
TASK_TIMEOUT_S = 30.0
MANDELBROT_BUILD = Path(__file__).resolve().parents[2] / "examples" / "mandelbrot-wasm" / "build.sh"


@dataclass
class Devnet:
    home: Path
    env: dict[str, str]
    up_output: str
    up_seconds: float

    @property
    def config_path(self) -> Path:
        return self.home / ".decloud" / "config.toml"

    @property
    def dir(self) -> Path:
        return self.home / ".decloud" / "devnet"

    def config(self) -> dict[str, Any]:
        return tomllib.loads(self.config_path.read_text())

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return decloud_devnet(self.env, *args)


def decloud_devnet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "decloud.devnet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    home = tmp_path_factory.mktemp("home")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DECLOUD_CONFIG", "DECLOUD_DEVNET_", "DECLOUD_WALLET_"))
    }
    # A fresh home, but the compiled contracts of this machine's cache.
    env |= {"HOME": str(home), "DECLOUD_CACHE_DIR": str(cache_dir())}
    started = time.monotonic()
    up = decloud_devnet(env, "up", "--workers", str(WORKERS))
    seconds = time.monotonic() - started
    print(f"\n`decloud devnet up --workers {WORKERS}` took {seconds:.1f} s")
    record_file = home / ".decloud" / "devnet" / "devnet.json"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield Devnet(home, env, up.stdout + up.stderr, seconds)
    finally:
        record = DevnetRecord.load(record_file)
        decloud_devnet(env, "down")
        _kill_leftovers(record.processes if record else ())


def _kill_leftovers(processes: tuple[ProcessRecord, ...]) -> None:
    """If `down` failed, stop what it left, by its recorded PID (and start time)."""
    for process in processes:
        if process.alive():
            os.killpg(process.pid, signal.SIGKILL)


def test_up_is_ready_well_within_the_bound(devnet: Devnet) -> None:
    record = DevnetRecord.load(devnet.dir / "devnet.json")
    assert record is not None and record.up_seconds is not None
    print(f"up measured by itself: {record.up_seconds} s (target < {UP_TARGET_S:g} s)")
    assert devnet.up_seconds < UP_BOUND_S
    assert "ready in" in devnet.up_output


def test_status_shows_every_process_alive_and_every_role_funded(devnet: Devnet) -> None:
    status = devnet.run("status", "--json")

    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] is True
    assert {process["name"] for process in report["processes"]} == PROCESSES
    assert all(process["alive"] for process in report["processes"])
    assert report["head"] > 0
    for account in report["accounts"]:
        assert (account["wallet"], account["free"]) == (FUNDING, DEPOSIT), account


def test_the_config_file_has_every_client_and_service_table(devnet: Devnet) -> None:
    config = devnet.config()

    assert {"chain", "contracts", "services", "wallet", "apps"} <= config.keys()
    assert {"market", "storage", "scheduler", "worker", "devnet"} <= config.keys()
    assert config["chain"]["chain_id"] == 31337
    assert set(config["contracts"]) == {
        "token",
        "app_registry",
        "dataset_registry",
        "workerpool_registry",
        "hub",
        "marketplace",
        "deployed_at",
    }
    assert config["wallet"] == {
        "keystore": str(devnet.dir / "keystore"),
        "default": "requester",
        "password": DEVNET_PASSWORD,
    }


def test_the_contracts_of_the_config_file_answer_on_chain(devnet: Devnet) -> None:
    config = devnet.config()
    deployment = Deployment(chain_id=config["chain"]["chain_id"], **config["contracts"])
    reader = ChainClient(config["chain"]["rpc_url"], secrets.token_bytes(32))
    hub = Hub(reader, deployment)
    accounts = config["devnet"]["accounts"]

    assert hub.account(accounts["requester"]).free == DEPOSIT
    assert hub.account(accounts["worker-2"]).free == DEPOSIT
    pools = WorkerpoolRegistry(reader, deployment.workerpool_registry)
    assert pools.owner_of(config["devnet"]["workerpool"]) == accounts["workerpool_owner"]
    categories = reader.call(hub.marketplace.functions.category_count())
    assert categories == len(DEFAULT_CATEGORIES)


def test_every_service_answers_at_its_url(devnet: Devnet) -> None:
    config = devnet.config()
    services, hub = config["services"], config["contracts"]["hub"]

    market = httpx.get(f"{services['market']}/v1/info", timeout=10).json()
    storage = httpx.get(f"{services['storage']}/info", timeout=10).json()
    scheduler = httpx.get(f"{services['scheduler']}/v1/info", timeout=10).json()
    metrics = httpx.get(f"{services['scheduler']}/metrics", timeout=10).text

    assert (market["chain_id"], market["hub"]) == (31337, hub)
    assert (storage["chain_id"], storage["hub"]) == (31337, hub)
    assert scheduler["workerpool"] == config["devnet"]["workerpool"]
    assert scheduler["owner"] == config["devnet"]["accounts"]["workerpool_owner"]
    assert f"decloud_scheduler_workers_alive {float(WORKERS)}" in metrics


def test_the_keystore_opens_with_the_devnet_password_for_each_person(devnet: Devnet) -> None:
    accounts = devnet.config()["devnet"]["accounts"]
    for role in ("requester", "app_developer", "dataset_owner", "workerpool_owner"):
        keyfile = devnet.dir / "keystore" / f"{role}.json"
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
        key = Account.decrypt(json.loads(keyfile.read_text()), DEVNET_PASSWORD)
        assert Account.from_key(key).address == accounts[role]


def test_no_private_key_is_printed_or_written_outside_the_key_files(devnet: Devnet) -> None:
    status = devnet.run("status").stdout + devnet.run("status", "--json").stdout
    config_text = devnet.config_path.read_text()
    for key in dev_private_keys(1 + 4 + WORKERS):
        for text in (devnet.up_output, status, config_text):
            assert key.removeprefix("0x") not in text
    for key_file in (devnet.dir / "keys").iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_sample_app_is_registered_with_the_checksum_of_its_module(
    devnet: Devnet, tmp_path: Path
) -> None:
    config = devnet.config()
    deployment = Deployment(chain_id=config["chain"]["chain_id"], **config["contracts"])
    registry = AppRegistry(
        ChainClient(config["chain"]["rpc_url"], secrets.token_bytes(32)), deployment.app_registry
    )
    reference = tmp_path / "mandelbrot.wasm"
    subprocess.run([str(MANDELBROT_BUILD), str(reference)], check=True, capture_output=True)

    app = registry.app(config["apps"]["mandelbrot"])

    assert app is not None
    assert (app.name, app.app_type) == ("mandelbrot", AppType.WASM)
    assert app.multiaddr == (devnet.dir / "apps" / "mandelbrot.wasm").as_uri()
    assert app.checksum == hashlib.sha256(reference.read_bytes()).digest()
    assert registry.owner_of(app.address) == config["devnet"]["accounts"]["app_developer"]


def test_the_config_file_names_the_sample_app(devnet: Devnet) -> None:
    record = DevnetRecord.load(devnet.dir / "devnet.json")

    assert record is not None and record.missing_apps == {}
    assert devnet.config()["apps"] == record.apps == {"mandelbrot": record.apps["mandelbrot"]}


def test_the_market_lists_the_app_order_and_a_workerpool_order_per_category(
    devnet: Devnet,
) -> None:
    config = devnet.config()
    accounts, workerpool = config["devnet"]["accounts"], config["devnet"]["workerpool"]

    with MarketClient(config["services"]["market"]) as market:
        apps = market.orderbook(OrderKind.APP, app=config["apps"]["mandelbrot"]).orders
        pools = market.orderbook(OrderKind.WORKERPOOL, workerpool=workerpool).orders

    assert [(o.owner, int(o.price), int(o.remaining)) for o in apps] == [
        (accounts["app_developer"], APP_PRICE, ORDER_VOLUME)
    ]
    assert sorted(int(order.order.model_dump()["category"]) for order in pools) == list(
        range(len(DEFAULT_CATEGORIES))
    )
    for order in pools:
        assert (order.owner, order.status.value) == (accounts["workerpool_owner"], "open")
        assert (int(order.price), int(order.remaining)) == (WORKERPOOL_PRICE, ORDER_VOLUME)
        assert int(order.order.model_dump()["trust"]) == offered_trust(WORKERS) >= 3


def test_status_shows_the_sample_app_and_its_open_orders(devnet: Devnet) -> None:
    apps = devnet.config()["apps"]

    report = json.loads(devnet.run("status", "--json").stdout)
    text = devnet.run("status").stdout

    assert [(app["name"], app["address"], app["type"]) for app in report["apps"]] == [
        ("mandelbrot", apps["mandelbrot"], "WASM")
    ]
    assert report["missing_apps"] == {}
    assert sorted(order["kind"] for order in report["orders"]) == ["app"] + ["workerpool"] * len(
        DEFAULT_CATEGORIES
    )
    assert {order["status"] for order in report["orders"]} == {"open"}
    assert "mandelbrot" in text and "orders on the market" in text


def test_a_trust_3_request_matched_with_the_markets_orders_completes_on_the_devnets_workers(
    devnet: Devnet,
) -> None:
    """What `decloud app run mandelbrot --trust 3` does: the requester's own request against
    the cheapest compatible orders `up` published; the scheduler and the workers do the rest."""
    config = devnet.config()
    deployment = Deployment(chain_id=config["chain"]["chain_id"], **config["contracts"])
    keyfile = Path(config["wallet"]["keystore"]) / "requester.json"
    requester = Account.decrypt(json.loads(keyfile.read_text()), DEVNET_PASSWORD)
    hub = Hub(ChainClient(config["chain"]["rpc_url"], requester), deployment)
    request = trust_3_request(config["apps"]["mandelbrot"], hub.client.address)

    with MarketClient(config["services"]["market"]) as market:
        compatible = market.cheapest_compatible(request)
    app_order, pool_order, _ = compatible.orders()
    deal = hub.match_orders(
        app_order,
        bytes.fromhex(compatible.app.signature.removeprefix("0x")),
        pool_order,
        bytes.fromhex(compatible.workerpool.signature.removeprefix("0x")),
        request,
        hub.sign(request, bytes(requester)),
    )

    assert compatible.task_price == APP_PRICE + WORKERPOOL_PRICE
    task = wait_for_task(config["services"]["scheduler"], deal.task_id(deal.deal.bot_first))
    assert task["state"] == "completed", task
    assert {replicate["state"] for replicate in task["replicates"]} == {"revealed"}
    assert len(task["replicates"]) == WORKERS
    cid = task["results"].removeprefix("/ipfs/")
    assert httpx.head(f"{config['services']['storage']}/results/{cid}").status_code == 200


def trust_3_request(app: str, requester: str) -> RequestOrder:
    """One trust-3 execution of `app` in category XS, on any workerpool, at the devnet's
    prices."""
    return RequestOrder(
        app=app,
        appmaxprice=APP_PRICE,
        dataset=ZERO_ADDRESS,
        datasetmaxprice=0,
        workerpool=ZERO_ADDRESS,
        workerpoolmaxprice=WORKERPOOL_PRICE,
        requester=requester,
        volume=1,
        tag=NO_TAG,
        category=0,
        trust=3,
        beneficiary=requester,
        callback=ZERO_ADDRESS,
        params='{"iexec_args":"32 32 64"}',
        salt=secrets.token_bytes(32),
    )


def wait_for_task(scheduler: str, taskid: bytes) -> dict[str, Any]:
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = httpx.get(f"{scheduler}/v1/tasks/0x{taskid.hex()}", timeout=10)
        if answer.status_code == 200 and answer.json()["state"] in ("completed", "failed"):
            return dict(answer.json())
        time.sleep(0.2)
    raise AssertionError(f"task 0x{taskid.hex()} did not end within {TASK_TIMEOUT_S} s")


def test_a_second_up_refuses_and_says_to_run_down(devnet: Devnet) -> None:
    second = devnet.run("up", "--workers", "1")

    assert second.returncode != 0
    assert "already running" in second.stderr and "decloud devnet down" in second.stderr
    assert json.loads(devnet.run("status", "--json").stdout)["running"] is True


def test_down_stops_every_process_and_removes_all_but_the_logs(devnet: Devnet) -> None:
    record = DevnetRecord.load(devnet.dir / "devnet.json")
    assert record is not None and {p.name for p in record.processes} == PROCESSES

    down = devnet.run("down", "--keep-logs", "--json")

    assert down.returncode == 0, down.stderr
    assert set(json.loads(down.stdout)["stopped"]) == PROCESSES
    for process in record.processes:
        assert not process.alive(), f"{process.name} (pid {process.pid}) still runs"
    assert not devnet.config_path.exists()
    assert [entry.name for entry in devnet.dir.iterdir()] == ["logs"]
    assert devnet.run("status").returncode == 1
