"""Typed access to the payment token and the app, dataset and workerpool registries.

Services and the SDK talk about apps, datasets and workerpools, not about ABI tuples and
token ids: these facades take and return Python values and dataclasses, and send their
transactions through a `ChainClient` (so reverts arrive as `RegistryError`, `TokenError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from web3 import Web3
from web3.contract import Contract

from decloud.chain.client import ChainClient, Receipt

_ZERO_BYTES32 = bytes(32)


class AppType(IntEnum):
    """The runtime an app targets (APP_TYPE_* in AppRegistry.vy)."""

    OCI = 0
    WASM = 1


@dataclass(frozen=True)
class App:
    address: str
    name: str
    app_type: AppType
    multiaddr: str
    checksum: bytes
    mrenclave: bytes

    @property
    def tee(self) -> bool:
        """Whether the app can run in an enclave (it declares a fingerprint)."""
        return bool(self.mrenclave)


@dataclass(frozen=True)
class Dataset:
    address: str
    name: str
    multiaddr: str
    checksum: bytes


@dataclass(frozen=True)
class Workerpool:
    address: str
    description: str
    worker_stake_ratio: int
    scheduler_reward_ratio: int


class Token:
    """The ERC-20 the hub is paid in."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract: Contract = client.contract("Token", address)

    @property
    def address(self) -> str:
        return self.contract.address

    def balance_of(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.balanceOf(account)))

    def mint(self, to: str, amount: int) -> Receipt:
        """Create tokens (devnet token only; the caller must be its owner)."""
        return self.client.transact(self.contract.functions.mint(to, amount))

    def approve(self, spender: str, amount: int) -> Receipt:
        return self.client.transact(self.contract.functions.approve(spender, amount))

    def transfer(self, to: str, amount: int) -> Receipt:
        return self.client.transact(self.contract.functions.transfer(to, amount))


class _Registry:
    """What the three registries share: resources are ERC-721 tokens whose id is the
    resource's 20-byte address read as an integer."""

    contract_name: ClassVar[str]

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract: Contract = client.contract(self.contract_name, address)

    @property
    def address(self) -> str:
        return self.contract.address

    def owner_of(self, resource: str) -> str:
        """The current owner of a resource; reverts (RegistryError) if it does not exist."""
        return str(self.client.call(self.contract.functions.ownerOf(_token_id(resource))))

    def transfer(self, resource: str, to: str) -> Receipt:
        """Give a resource (and the right to sign its orders) to another account."""
        return self.client.transact(
            self.contract.functions.transferFrom(self.client.address, to, _token_id(resource))
        )


class AppRegistry(_Registry):
    contract_name = "AppRegistry"

    def create_app(
        self,
        name: str,
        app_type: AppType,
        multiaddr: str,
        checksum: bytes,
        mrenclave: bytes = b"",
        owner: str | None = None,
    ) -> str:
        """Register an app owned by `owner` (default: the client's account); its address."""
        receipt = self.client.transact(
            self.contract.functions.createApp(
                owner or self.client.address, name, int(app_type), multiaddr, checksum, mrenclave
            )
        )
        return str(receipt.event("AppCreated").args["app"])

    def app(self, address: str) -> App | None:
        """The app's metadata, None if no app has this address."""
        name, app_type, multiaddr, checksum, mrenclave = self.client.call(
            self.contract.functions.apps(address)
        )
        if checksum == _ZERO_BYTES32:
            return None
        return App(
            address=Web3.to_checksum_address(address),
            name=name,
            app_type=AppType(app_type),
            multiaddr=multiaddr,
            checksum=checksum,
            mrenclave=mrenclave,
        )


class DatasetRegistry(_Registry):
    contract_name = "DatasetRegistry"

    def create_dataset(
        self, name: str, multiaddr: str, checksum: bytes, owner: str | None = None
    ) -> str:
        """Register a dataset owned by `owner` (default: the client's account); its address."""
        receipt = self.client.transact(
            self.contract.functions.createDataset(
                owner or self.client.address, name, multiaddr, checksum
            )
        )
        return str(receipt.event("DatasetCreated").args["dataset"])

    def dataset(self, address: str) -> Dataset | None:
        """The dataset's metadata, None if no dataset has this address."""
        name, multiaddr, checksum = self.client.call(self.contract.functions.datasets(address))
        if checksum == _ZERO_BYTES32:
            return None
        return Dataset(
            address=Web3.to_checksum_address(address),
            name=name,
            multiaddr=multiaddr,
            checksum=checksum,
        )


class WorkerpoolRegistry(_Registry):
    contract_name = "WorkerpoolRegistry"

    def create_workerpool(self, description: str, owner: str | None = None) -> str:
        """Register a workerpool with the default policy; its address."""
        receipt = self.client.transact(
            self.contract.functions.createWorkerpool(owner or self.client.address, description)
        )
        return str(receipt.event("WorkerpoolCreated").args["workerpool"])

    def workerpool(self, address: str) -> Workerpool | None:
        """The pool's description and policy, None if no pool has this address."""
        description, worker_stake_ratio, scheduler_reward_ratio = self.client.call(
            self.contract.functions.workerpools(address)
        )
        if not description:
            return None
        return Workerpool(
            address=Web3.to_checksum_address(address),
            description=description,
            worker_stake_ratio=worker_stake_ratio,
            scheduler_reward_ratio=scheduler_reward_ratio,
        )

    def set_workerpool_policy(
        self, workerpool: str, worker_stake_ratio: int, scheduler_reward_ratio: int
    ) -> Receipt:
        """Change the policy future deals of the pool snapshot (the caller must own it)."""
        return self.client.transact(
            self.contract.functions.setWorkerpoolPolicy(
                workerpool, worker_stake_ratio, scheduler_reward_ratio
            )
        )


def _token_id(resource: str) -> int:
    return int(resource, 16)
