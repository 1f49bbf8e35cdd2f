"""What the scheduler does on the chain, as the workerpool owner: sign authorizations, send
finalize, reopen and claim, and read scores, registries and block times.

The owner's key stays inside the `ChainClient` and this object; it is never logged, and
`repr` does not show it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from decloud.chain.client import ChainClient, Receipt
from decloud.chain.deploy import Deployment
from decloud.chain.errors import reaching_node
from decloud.chain.events import ChainEvent, EventDecoder
from decloud.chain.hub import ZERO_ADDRESS, Hub, sort_addresses
from decloud.chain.registries import App, AppRegistry, Dataset, DatasetRegistry
from decloud.protocol.hub import Deal
from decloud.scheduler.models import DealRow


@dataclass(frozen=True)
class DealTask:
    """Where a task belongs: what the hub's task calls take to name it."""

    dealid: bytes
    deal: Deal
    index: int


class ChainClock:
    """The chain's block time, estimated between reads from the last block seen, so that
    a pull needs no call to the node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block_time: int | None = None
        self._seen_at = 0.0

    def update(self, block_time: int) -> None:
        with self._lock:
            self._block_time = block_time
            self._seen_at = time.time()

    def now(self) -> int:
        with self._lock:
            if self._block_time is None:
                return int(time.time())
            return self._block_time + int(time.time() - self._seen_at)


class SchedulerChain:
    """The hub, the marketplace and the registries, seen by the workerpool owner."""

    def __init__(self, rpc_url: str, deployment: Deployment, owner_key: bytes) -> None:
        self.deployment = deployment
        self.client = ChainClient(rpc_url, owner_key)
        self.hub = Hub(self.client, deployment)
        self.apps = AppRegistry(self.client, deployment.app_registry)
        self.datasets = DatasetRegistry(self.client, deployment.dataset_registry)
        self.clock = ChainClock()
        self._key = owner_key
        self._hub_events = EventDecoder([self.hub.hub])

    def __repr__(self) -> str:
        return f"SchedulerChain(owner={self.client.address}, hub={self.hub.hub.address})"

    @property
    def owner(self) -> str:
        return self.client.address

    @property
    def w3(self) -> Web3:
        return self.client.w3

    def authorize(self, worker: str, taskid: bytes) -> bytes:
        """WorkerpoolAuthorization(worker, taskid, no enclave), signed by the owner."""
        return self.hub.authorize(worker, taskid, self._key)

    def score(self, worker: str) -> int:
        return self.hub.account(worker).score

    def block_time(self) -> int:
        """The latest block's timestamp; it also sets the clock."""
        return self.head()[1]

    def head(self) -> tuple[bytes, int]:
        """The latest block's hash and timestamp; it also sets the clock."""
        with reaching_node():
            block = self.w3.eth.get_block("latest")
        timestamp = int(block["timestamp"])
        self.clock.update(timestamp)
        return bytes(block["hash"]), timestamp

    def mined_events(self, tx_hash: str) -> list[ChainEvent]:
        """The hub's events of a mined transaction; none while it is not mined, or if it
        failed."""
        with reaching_node():
            try:
                mined = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return []
        if mined["status"] != 1:
            return []
        events = (self._hub_events.decode(log) for log in mined["logs"])
        return [event for event in events if event is not None]

    def timestamp_of(self, block_number: int) -> int:
        with reaching_node():
            return int(self.w3.eth.get_block(block_number)["timestamp"])

    def app(self, address: str) -> App | None:
        return self.apps.app(address)

    def dataset(self, address: str) -> Dataset | None:
        if address == ZERO_ADDRESS:
            return None
        return self.datasets.dataset(address)

    def finalize(
        self, task: DealTask, contributors: list[str], results: str, callback_data: bytes
    ) -> Receipt:
        return self.client.transact(
            self.hub.hub.functions.finalize(
                task.dealid,
                task.deal.as_tuple(),
                task.index,
                sort_addresses(contributors),
                results.encode(),
                callback_data,
            )
        )

    def reopen(self, task: DealTask, consensus: bytes, supporters: list[str]) -> Receipt:
        return self.client.transact(
            self.hub.hub.functions.reopen(
                task.dealid, task.deal.as_tuple(), task.index, consensus, sort_addresses(supporters)
            )
        )

    def claim(self, task: DealTask, contributors: list[str]) -> Receipt:
        return self.client.transact(
            self.hub.hub.functions.claim(
                task.dealid, task.deal.as_tuple(), task.index, sort_addresses(contributors)
            )
        )


def deal_task(deal: DealRow, index: int) -> DealTask:
    return DealTask(bytes.fromhex(deal.dealid[2:]), Deal.decode(deal.deal), index)
