"""Fixtures: one anvil per session with a deployed protocol and funded parties, their keys in
a keystore (light scrypt: unlocking is then instant), a config file naming both, and the
`decloud` CLI run in-process against them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from decloud.chain import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.cli import app as decloud
from decloud.sdk.config import ChainSettings, ClientConfig, ServiceUrls, WalletSettings
from decloud.sdk.connection import Connection, connect
from decloud.sdk.wallet import Keystore, Wallet
from tests.wallets import keystore_of

PARTIES = ["requester", "app_owner", "pool_owner", "dataset_owner", "stranger"]
PASSWORD = "correct horse battery staple"

Cli = Callable[..., Result]


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def local(anvil: Anvil) -> LocalMarket:
    return LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)


@pytest.fixture(scope="session")
def keystore(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Keystore:
    """Every party's key, as a wallet named after the party."""
    return keystore_of(local, PARTIES, tmp_path_factory.mktemp("home") / "keystore", PASSWORD)


@pytest.fixture(scope="session")
def client_config(local: LocalMarket, keystore: Keystore) -> ClientConfig:
    return ClientConfig(
        chain=ChainSettings(rpc_url=local.rpc_url, chain_id=local.deployment.chain_id),
        contracts=local.deployment,
        services=ServiceUrls(),
        wallet=WalletSettings(keystore=keystore.directory, default="requester"),
    )


@pytest.fixture(scope="session")
def config_file(client_config: ClientConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return client_config.save(tmp_path_factory.mktemp("config") / "config.toml")


def config_with_scheduler(client_config: ClientConfig, url: str, directory: Path) -> Path:
    """A config file like the session's, naming a scheduler at `url`."""
    changed = replace(client_config, services=ServiceUrls(scheduler=url))
    return changed.save(directory / "with-scheduler.toml")


def cli_runner(defaults: dict[str, str]) -> Cli:
    """Runs `decloud ARGS...` in-process with the variables `defaults`; `wallet=` picks the
    wallet, `env=` adds variables, `input=` feeds prompts."""
    runner = CliRunner()

    def run(
        *args: str,
        wallet: str | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> Result:
        variables = dict(defaults)
        if wallet is not None:
            variables["DECLOUD_WALLET"] = wallet
        variables.update(env or {})
        return runner.invoke(decloud, list(args), env=variables, input=input)

    return run


@pytest.fixture
def cli(config_file: Path) -> Cli:
    """The CLI with the session's config, and the wallets' password in the environment."""
    return cli_runner({"DECLOUD_CONFIG": str(config_file), "DECLOUD_WALLET_PASSWORD": PASSWORD})


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    """The CLI with a config that has only a [wallet] table: wallets need no chain."""
    path = tmp_path / "config.toml"
    path.write_text(f'[wallet]\nkeystore = "{tmp_path / "keystore"}"\n')
    return cli_runner({"DECLOUD_CONFIG": str(path)})


@pytest.fixture(scope="session")
def connection_of(client_config: ClientConfig, keystore: Keystore) -> Callable[[str], Connection]:
    """A connection that signs as the party's wallet."""

    def of(name: str) -> Connection:
        wallet: Wallet = keystore.unlock(name, PASSWORD)
        return connect(client_config, wallet)

    return of


def no_secret_in(result: Result, *keys: bytes) -> None:
    """Neither stdout nor stderr shows any of the private keys, in any hex case."""
    text = (result.stdout + result.stderr).lower()
    for key in keys:
        assert key.hex() not in text


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables of the developer's shell never leak into a test."""
    for variable in ("DECLOUD_CONFIG", "DECLOUD_WALLET", "DECLOUD_WALLET_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
