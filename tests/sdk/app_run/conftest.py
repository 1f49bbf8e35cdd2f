"""Fixtures for buying runs: the worker tests' chain, sample app and result store (imported
from tests/worker), a real market service per test, a scheduler with a worker agent for the
module, the parties' wallets, and config files naming those services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from decloud.chain.hub import ZERO_ADDRESS
from decloud.chain.localnet import LocalMarket
from decloud.market.client import MarketClient
from decloud.market.service import build_app as market_app
from decloud.market.settings import MarketSettings
from decloud.protocol.orders import AppOrder, WorkerpoolOrder
from decloud.protocol.tags import NO_TAG
from decloud.scheduler.api import create_app as scheduler_app
from decloud.scheduler.service import build_scheduler
from decloud.sdk.config import ChainSettings, ClientConfig, ServiceUrls, WalletSettings
from decloud.sdk.connection import Connection, connect
from decloud.sdk.wallet import Keystore
from tests.sdk.conftest import Cli, cli_runner
from tests.wallets import keystore_of
from tests.worker.conftest import anvil, apps, local, module_dir, module_server, store_url
from tests.worker.pool import Apps, Pool, WorkerFactory, scheduler_settings, serving

__all__ = ["anvil", "apps", "local", "module_dir", "module_server", "store_url"]

PASSWORD = "app-run"
LOG_CAP = 16
"""Small enough to cut the sample app's stdout: truncation is what the requester sees."""
WALLETS = ["requester", "app_owner", "pool_owner", "worker3", "pauper"]
"""The parties that act through the SDK here; worker3 runs no worker: it is a stranger."""


@pytest.fixture(scope="session")
def keystore(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Keystore:
    return keystore_of(
        local, WALLETS, tmp_path_factory.mktemp("app-run-home") / "keystore", PASSWORD
    )


@dataclass
class Network:
    """What a config file names: the chain, the services, the wallets and the apps."""

    local: LocalMarket
    keystore: Keystore
    apps: Apps
    directory: Path

    def config(self, **services: str) -> ClientConfig:
        return ClientConfig(
            chain=ChainSettings(
                rpc_url=self.local.rpc_url, chain_id=self.local.deployment.chain_id
            ),
            contracts=self.local.deployment,
            services=ServiceUrls(**services),
            wallet=WalletSettings(keystore=self.keystore.directory, default="requester"),
            apps={"mandelbrot": self.apps.by_file},
        )

    def connection(self, party: str, **services: str) -> Connection:
        return connect(self.config(**services), self.keystore.unlock(party, PASSWORD))

    def cli(self, name: str, **services: str) -> Cli:
        """The CLI with a config file naming `services`, saved as `name`."""
        path = self.config(**services).save(self.directory / f"{name}.toml")
        return cli_runner({"DECLOUD_CONFIG": str(path), "DECLOUD_WALLET_PASSWORD": PASSWORD})


@pytest.fixture
def network(local: LocalMarket, keystore: Keystore, apps: Apps, tmp_path: Path) -> Network:
    return Network(local, keystore, apps, tmp_path)


def app_order(local: LocalMarket, app: str, price: int) -> AppOrder:
    return AppOrder(
        app=app, appprice=price, volume=1_000, tag=NO_TAG, datasetrestrict=ZERO_ADDRESS,
        workerpoolrestrict=ZERO_ADDRESS, requesterrestrict=ZERO_ADDRESS, salt=local.next_salt(),
    )  # fmt: skip


def pool_order(
    local: LocalMarket, price: int, *, trust: int, category: int = 0, workerpool: str = ""
) -> WorkerpoolOrder:
    return WorkerpoolOrder(
        workerpool=workerpool or local.workerpool, workerpoolprice=price, volume=1_000,
        tag=NO_TAG, category=category, trust=trust, apprestrict=ZERO_ADDRESS,
        datasetrestrict=ZERO_ADDRESS, requesterrestrict=ZERO_ADDRESS, salt=local.next_salt(),
    )  # fmt: skip


@contextmanager
def market_service(local: LocalMarket, directory: Path) -> Iterator[str]:
    """A fresh market (its own book) following the chain from its head, served over HTTP."""
    local.deployment.save(directory / "market-deployment.json")
    settings = MarketSettings(
        database_url=f"sqlite:///{directory / 'market.db'}",
        port=0,
        rpc_url=local.rpc_url,
        deployment=directory / "market-deployment.json",
        sync_interval_s=0.2,
        start_block=local.admin.w3.eth.block_number,
    )
    with serving(market_app(settings), "market") as url:
        yield url


def publish(local: LocalMarket, market_url: str, *orders: AppOrder | WorkerpoolOrder) -> None:
    """Publish app and workerpool orders, each signed by its owner."""
    with MarketClient(market_url) as market:
        for order in orders:
            owner = "app_owner" if isinstance(order, AppOrder) else "pool_owner"
            market.sign_and_publish(order, local[owner].key)


@pytest.fixture
def market_url(local: LocalMarket, tmp_path: Path) -> Iterator[str]:
    with market_service(local, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def module_pool(
    local: LocalMarket, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pool]:
    """A scheduler of the local pool from the chain's head, served, for the whole module;
    it keeps the first LOG_CAP bytes of each output stream."""
    directory = tmp_path_factory.mktemp("app-run-pool")
    settings = scheduler_settings(local, directory / "scheduler", max_log_bytes=LOG_CAP)
    scheduler = build_scheduler(settings)
    try:
        with serving(scheduler_app(scheduler), "scheduler") as url:
            yield Pool(local, url, store_url, scheduler)
    finally:
        scheduler.database.dispose()


@pytest.fixture(scope="module")
def module_workers(
    module_pool: Pool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(module_pool, tmp_path_factory.mktemp("app-run-workers"))
    try:
        yield factory
    finally:
        factory.stop_all()
