"""Fixtures for tests against a real chain: one anvil per session, one client per account."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from decloud.chain import (
    Anvil,
    AppRegistry,
    ChainClient,
    DatasetRegistry,
    Deployment,
    Token,
    WorkerpoolRegistry,
    compile_contract,
    deploy_protocol,
)
from decloud.chain.compiler import contracts_dir


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def client_for(anvil: Anvil) -> Callable[[int], ChainClient]:
    """A client for anvil's dev account `index`; tests use distinct accounts so that their
    nonces never interfere."""
    return lambda index: ChainClient(anvil.rpc_url, anvil.private_keys[index])


@pytest.fixture(scope="session")
def client(client_for: Callable[[int], ChainClient]) -> ChainClient:
    """The deployer: anvil's first dev account."""
    return client_for(0)


@pytest.fixture
def token(client: ChainClient) -> Token:
    contract = client.deploy(compile_contract("Token"), "test token", "TST", 18)
    return Token(client, contract.address)


@pytest.fixture
def app_registry(client: ChainClient) -> AppRegistry:
    return AppRegistry(client, client.deploy(compile_contract("AppRegistry")).address)


@pytest.fixture
def dataset_registry(client: ChainClient) -> DatasetRegistry:
    return DatasetRegistry(client, client.deploy(compile_contract("DatasetRegistry")).address)


@pytest.fixture
def workerpool_registry(client: ChainClient) -> WorkerpoolRegistry:
    return WorkerpoolRegistry(client, client.deploy(compile_contract("WorkerpoolRegistry")).address)


@pytest.fixture
def deployment(client: ChainClient) -> Deployment:
    """A whole protocol; skipped while the hub's contracts are not written yet."""
    missing = [
        name for name in ("Hub", "Marketplace") if not (contracts_dir() / f"{name}.vy").exists()
    ]
    if missing:
        pytest.skip(f"contracts not written yet: {', '.join(missing)}")
    return deploy_protocol(client)
