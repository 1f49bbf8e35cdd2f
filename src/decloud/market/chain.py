"""What the market reads from the chain: owners, consumed volume, balances, signatures.

Read-only: the market holds no key and sends no transaction. Every read goes to the node at
its latest block; the chain sync corrects anything a later block changes.
"""

from __future__ import annotations

from functools import cached_property

from web3 import Web3
from web3.contract import Contract

from decloud.chain.compiler import compile_contract
from decloud.chain.deploy import Deployment
from decloud.chain.errors import reaching_node
from decloud.market.models import OrderKind
from decloud.protocol.orders import Eip712Domain

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class MarketChain:
    """The contracts of one deployment, read through one JSON-RPC node."""

    def __init__(self, rpc_url: str, deployment: Deployment, request_timeout: float = 10.0) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout}))
        self.deployment = deployment
        self.domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.hub)

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=list(compile_contract(name).abi)
        )

    @cached_property
    def hub(self) -> Contract:
        return self.contract("Hub", self.deployment.hub)

    @cached_property
    def marketplace(self) -> Contract:
        return self.contract("Marketplace", self.deployment.marketplace)

    @cached_property
    def registries(self) -> dict[OrderKind, Contract]:
        """The registry of each kind of resource a sell order names."""
        return {
            OrderKind.APP: self.contract("AppRegistry", self.deployment.app_registry),
            OrderKind.DATASET: self.contract("DatasetRegistry", self.deployment.dataset_registry),
            OrderKind.WORKERPOOL: self.contract(
                "WorkerpoolRegistry", self.deployment.workerpool_registry
            ),
        }

    def head(self) -> int:
        with reaching_node():
            return int(self.w3.eth.block_number)

    def owner_of(self, kind: OrderKind, resource: str) -> str | None:
        """The current owner of an app, dataset or workerpool; None if not registered."""
        if kind is OrderKind.REQUEST:
            raise ValueError("a request order names no owned resource")
        registry = self.registries[kind]
        with reaching_node():
            match kind:
                case OrderKind.APP:
                    owner, _tee = registry.functions.appInfo(resource).call()
                case OrderKind.DATASET:
                    owner = registry.functions.datasetOwner(resource).call()
                case OrderKind.WORKERPOOL:
                    owner, _stake_ratio, _reward_ratio = registry.functions.workerpoolInfo(
                        resource
                    ).call()
        return None if owner == ZERO_ADDRESS else str(owner)

    def consumed(self, order_hash: bytes) -> int:
        """Volume of the order already matched; its whole volume once closed."""
        with reaching_node():
            return int(self.marketplace.functions.consumed(order_hash).call())

    def free_balance(self, account: str) -> int:
        with reaching_node():
            free, _locked, _score = self.hub.functions.viewAccount(account).call()
        return int(free)

    def is_contract(self, account: str) -> bool:
        with reaching_node():
            return len(self.w3.eth.get_code(Web3.to_checksum_address(account))) > 0

    def signature_valid(self, signer: str, digest: bytes, signature: bytes) -> bool:
        """The hub's own rule: ECDSA, ERC-1271 for a contract signer, or (empty signature)
        an on-chain presign."""
        with reaching_node():
            return bool(
                self.marketplace.functions.verifySignature(signer, digest, signature).call()
            )
