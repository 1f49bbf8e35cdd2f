"""The terms of a deal, as the hub hashes them (`Deal` in Hub.vy).

Only keccak256(abi_encode(Deal)) is stored on-chain; the Marketplace logs the encoded
struct in `DealCreated` and every task call passes it back as calldata. Off-chain parties
(schedulers, workers, requesters) keep it as this dataclass.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any, ClassVar, Self

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak


@dataclass(frozen=True)
class Deal:
    """A matched deal: who is paid what, the task bag, deadlines' time base and the policy
    snapshotted from the workerpool. Field order is the Vyper struct's."""

    app: str
    app_owner: str
    app_price: int
    dataset: str
    dataset_owner: str
    dataset_price: int
    workerpool: str
    workerpool_owner: str
    workerpool_price: int
    requester: str
    beneficiary: str
    callback: str
    category: int
    time_ref: int
    start_time: int
    trust: int
    tag: bytes
    bot_first: int
    bot_size: int
    worker_stake: int
    scheduler_reward_ratio: int

    ABI_TYPES: ClassVar[tuple[str, ...]] = (
        "address", "address", "uint256", "address", "address", "uint256", "address", "address",
        "uint256", "address", "address", "address", "uint256", "uint256", "uint256", "uint256",
        "bytes32", "uint256", "uint256", "uint256", "uint256",
    )  # fmt: skip

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple to pass to a contract call."""
        return astuple(self)

    @classmethod
    def from_tuple(cls, values: tuple[Any, ...]) -> Self:
        """From a decoded ABI tuple (addresses in any case)."""
        converted: list[Any] = [
            to_checksum_address(value) if abi_type == "address" else value
            for abi_type, value in zip(cls.ABI_TYPES, values, strict=True)
        ]
        return cls(*converted)

    @classmethod
    def decode(cls, encoded: bytes) -> Self:
        """From the `deal` bytes of a DealCreated event."""
        (values,) = decode(["(" + ",".join(cls.ABI_TYPES) + ")"], encoded)
        return cls.from_tuple(tuple(values))

    def encode(self) -> bytes:
        return encode(list(self.ABI_TYPES), list(self.as_tuple()))

    def hash(self) -> bytes:
        """What the Hub stores under the deal id: keccak256(abi_encode(deal))."""
        return keccak(self.encode())

    @property
    def task_price(self) -> int:
        """What the requester pays per task."""
        return self.app_price + self.dataset_price + self.workerpool_price

    def task_indexes(self) -> range:
        return range(self.bot_first, self.bot_first + self.bot_size)
