"""What the market reads from the chain: owners, consumed volume, balances, code, signatures.

Read-only: the market holds no key and sends no transaction. Reads go through a `ChainView`,
the chain as of one block: every read is pinned to that block's hash (EIP-1898), so the
answers agree with one another, and they stay true for as long as that block is the head.
Views of the same block therefore share their reads: publishing a thousand orders of one
owner within a block reads the owner's code and balance once. A new block starts afresh,
so no check ever uses a value older than the head it was made at; the chain sync corrects
anything a later block changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from decloud.chain.compiler import compile_contract
from decloud.chain.deploy import Deployment
from decloud.market.models import OrderKind
from decloud.market.rpc import JsonRpc, RpcError
from decloud.protocol.orders import Eip712Domain

MAX_CACHED_READS = 10_000
"""Reads kept for the current block; beyond that the cache starts again (memory bound)."""
READS_PER_REQUEST = 500
"""Reads sent in one JSON-RPC batch: nodes and providers cap batch sizes (geth: 1,000)."""


@dataclass(frozen=True)
class Read:
    """One value read from the chain: an `eth_call` of `data` on contract `target`, or
    (`data` None) the code of account `target`; `decode` turns the node's hex answer into
    the value."""

    target: str
    data: str | None
    decode: Callable[[str], Any] = field(compare=False)

    def request(self, block_hash: str) -> tuple[str, list[Any]]:
        at = {"blockHash": block_hash}
        if self.data is None:
            return "eth_getCode", [self.target, at]
        return "eth_call", [{"to": self.target, "data": self.data}, at]


def _word(answer: str, index: int) -> int:
    """Word `index` of an ABI-encoded answer."""
    word = answer[2 + 64 * index : 2 + 64 * (index + 1)]
    if len(word) != 64:
        raise RpcError(f"the node answered {answer[:80]!r}, too short for an ABI word")
    return int(word, 16)


def _owner(answer: str) -> str | None:
    owner = _word(answer, 0).to_bytes(32, "big")[12:]
    return None if not any(owner) else str(to_checksum_address(owner))


def _first_uint(answer: str) -> int:
    return _word(answer, 0)


def _has_code(answer: str) -> bool:
    return len(answer) > 2


def _is_true(answer: str) -> bool:
    return _word(answer, 0) != 0


def _address_word(address: str) -> str:
    return address[2:].lower().rjust(64, "0")


class ChainReads:
    """The reads the market makes, as `Read`s: calldata built once per argument, with the
    selectors of the deployment's compiled ABIs."""

    def __init__(self, deployment: Deployment) -> None:
        self._owner_calls = {
            OrderKind.APP: (deployment.app_registry, _selector("AppRegistry", "appInfo")),
            OrderKind.DATASET: (
                deployment.dataset_registry,
                _selector("DatasetRegistry", "datasetOwner"),
            ),
            OrderKind.WORKERPOOL: (
                deployment.workerpool_registry,
                _selector("WorkerpoolRegistry", "workerpoolInfo"),
            ),
        }
        self._marketplace = deployment.marketplace
        self._hub = deployment.hub
        self._consumed = _selector("Marketplace", "consumed")
        self._verify = _selector("Marketplace", "verifySignature")
        self._view_account = _selector("Hub", "viewAccount")

    def owner(self, kind: OrderKind, resource: str) -> Read:
        """The owner of an app, dataset or workerpool; None if not registered."""
        if kind is OrderKind.REQUEST:
            raise ValueError("a request order names no owned resource")
        registry, selector = self._owner_calls[kind]
        return Read(registry, selector + _address_word(resource), _owner)

    def consumed(self, order_hash: bytes) -> Read:
        """Volume of the order already matched; its whole volume once closed."""
        return Read(self._marketplace, self._consumed + order_hash.hex(), _first_uint)

    def free_balance(self, account: str) -> Read:
        return Read(self._hub, self._view_account + _address_word(account), _first_uint)

    def is_contract(self, account: str) -> Read:
        return Read(account, None, _has_code)

    def signature_valid(self, signer: str, digest: bytes, signature: bytes) -> Read:
        """The hub's own rule: ECDSA, ERC-1271 for a contract signer, or (empty signature)
        an on-chain presign."""
        arguments = encode(["address", "bytes32", "bytes"], [signer, digest, signature])
        return Read(self._marketplace, self._verify + arguments.hex(), _is_true)


def _selector(contract: str, function: str) -> str:
    """0x-hex selector of `function`, from the contract's compiled ABI (not retyped here)."""
    entry = next(
        item
        for item in compile_contract(contract).abi
        if item.get("type") == "function" and item.get("name") == function
    )
    signature = f"{function}({','.join(arg['type'] for arg in entry['inputs'])})"
    return "0x" + keccak(text=signature)[:4].hex()


class ChainView:
    """The chain as of block `number` (hash `block_hash`); reads are cached with every
    other view of the same block."""

    def __init__(
        self, rpc: JsonRpc, reads: ChainReads, number: int, block_hash: str, cache: dict[Read, Any]
    ) -> None:
        self.rpc = rpc
        self.reads = reads
        self.number = number
        self.block_hash = block_hash
        self._cache = cache

    def prefetch(self, reads: Iterable[Read]) -> None:
        """Read in one batch everything of `reads` not read yet at this block."""
        missing = list(dict.fromkeys(read for read in reads if read not in self._cache))
        if missing:
            self._fetch(missing)

    def value(self, read: Read) -> Any:
        try:
            return self._cache[read]
        except KeyError:  # not read yet, or the cache started again meanwhile
            return self._fetch([read])[read]

    def _fetch(self, reads: list[Read]) -> dict[Read, Any]:
        values: dict[Read, Any] = {}
        for start in range(0, len(reads), READS_PER_REQUEST):
            chunk = reads[start : start + READS_PER_REQUEST]
            answers = self.rpc.batch([read.request(self.block_hash) for read in chunk])
            values.update(
                (read, read.decode(answer)) for read, answer in zip(chunk, answers, strict=True)
            )
        if len(self._cache) + len(values) > MAX_CACHED_READS:
            self._cache.clear()
        self._cache.update(values)
        return values

    def owner_of(self, kind: OrderKind, resource: str) -> str | None:
        owner = self.value(self.reads.owner(kind, resource))
        return None if owner is None else str(owner)

    def consumed(self, order_hash: bytes) -> int:
        return int(self.value(self.reads.consumed(order_hash)))

    def free_balance(self, account: str) -> int:
        return int(self.value(self.reads.free_balance(account)))

    def is_contract(self, account: str) -> bool:
        return bool(self.value(self.reads.is_contract(account)))

    def signature_valid(self, signer: str, digest: bytes, signature: bytes) -> bool:
        return bool(self.value(self.reads.signature_valid(signer, digest, signature)))


class _BlockCache:
    """The reads made at the current head, keyed by its hash; replaced at the next block."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block_hash = ""
        self._reads: dict[Read, Any] = {}

    def for_block(self, block_hash: str) -> dict[Read, Any]:
        with self._lock:
            if block_hash != self._block_hash:
                self._block_hash, self._reads = block_hash, {}
            return self._reads


class MarketChain:
    """The contracts of one deployment, read through one JSON-RPC node."""

    def __init__(self, rpc_url: str, deployment: Deployment, request_timeout: float = 10.0) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout}))
        self.rpc = JsonRpc(rpc_url, request_timeout)
        self.deployment = deployment
        self.domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.hub)
        self.domain_separator = self.domain.separator()
        self.reads = ChainReads(deployment)
        self._cache = _BlockCache()

    def view(self) -> ChainView:
        """The chain as of its current head."""
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise RpcError(f"the node has no latest block: {block!r}")
        block_hash = str(block["hash"])
        return ChainView(
            self.rpc, self.reads, int(block["number"], 16), block_hash,
            self._cache.for_block(block_hash),
        )  # fmt: skip

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
        """The registry of each kind of resource a sell order names, for the chain sync's
        event streams."""
        return {
            OrderKind.APP: self.contract("AppRegistry", self.deployment.app_registry),
            OrderKind.DATASET: self.contract("DatasetRegistry", self.deployment.dataset_registry),
            OrderKind.WORKERPOOL: self.contract(
                "WorkerpoolRegistry", self.deployment.workerpool_registry
            ),
        }
