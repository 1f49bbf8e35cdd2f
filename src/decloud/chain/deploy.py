"""Deploy a complete decloud protocol: token, registries, hub, marketplace, categories.

The devnet, the tests and a fresh production chain all need the same set of contracts
wired together; `deploy_protocol` does it in one call and returns a `Deployment` that
services load from a JSON file to know where the contracts are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from decloud.chain.client import ChainClient
from decloud.chain.compiler import compile_contract


@dataclass(frozen=True)
class CategorySpec:
    """A category of tasks: its name, what it is for, and its reference duration T."""

    name: str
    description: str
    work_clock_time_ref: int


# PoCo's categories (DESIGN.md section 2): a task gets 7 T to be contributed, 10 T in all.
DEFAULT_CATEGORIES = (
    CategorySpec("XS", "extra small tasks: reference duration 5 minutes", 300),
    CategorySpec("S", "small tasks: reference duration 20 minutes", 1_200),
    CategorySpec("M", "medium tasks: reference duration 1 hour", 3_600),
    CategorySpec("L", "large tasks: reference duration 3 hours", 10_800),
    CategorySpec("XL", "extra large tasks: reference duration 10 hours", 36_000),
)

# The devnet's own payment token.
DEVNET_TOKEN_NAME = "decloud devnet token"
DEVNET_TOKEN_SYMBOL = "DCLD"
DEVNET_TOKEN_DECIMALS = 18


@dataclass(frozen=True)
class Deployment:
    """Where a decloud protocol lives on one chain."""

    chain_id: int
    token: str
    app_registry: str
    dataset_registry: str
    workerpool_registry: str
    hub: str
    marketplace: str
    deployed_at: int = 0
    """A block no later than the first of the deployment: nothing of the protocol happened
    before it, so every scan of its logs starts there (0: unknown, from genesis)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls.from_json(json.loads(path.read_text()))


def deploy_protocol(client: ChainClient, token: str | None = None) -> Deployment:
    """Deploy the registries, the hub and its marketplace, paid in `token` (an existing
    ERC-20), or in a new devnet token owned by the client's account when none is given.

    The client's account owns the hub, links the marketplace to it (once and for all)
    and creates the default categories.
    """
    deployed_at = client.w3.eth.block_number
    if token is not None:
        token = Web3.to_checksum_address(token)
    else:
        token = client.deploy(
            compile_contract("Token"),
            DEVNET_TOKEN_NAME,
            DEVNET_TOKEN_SYMBOL,
            DEVNET_TOKEN_DECIMALS,
        ).address
    app_registry, dataset_registry, workerpool_registry = (
        client.deploy(compile_contract(name)).address
        for name in ("AppRegistry", "DatasetRegistry", "WorkerpoolRegistry")
    )
    hub = client.deploy(compile_contract("Hub"), token)
    marketplace = client.deploy(
        compile_contract("Marketplace"),
        hub.address,
        app_registry,
        dataset_registry,
        workerpool_registry,
    )
    client.transact(hub.functions.setMarketplace(marketplace.address))
    for category in DEFAULT_CATEGORIES:
        client.transact(
            marketplace.functions.createCategory(
                category.name, category.description, category.work_clock_time_ref
            )
        )
    return Deployment(
        chain_id=client.chain_id,
        token=token,
        app_registry=app_registry,
        dataset_registry=dataset_registry,
        workerpool_registry=workerpool_registry,
        hub=hub.address,
        marketplace=marketplace.address,
        deployed_at=deployed_at,
    )
