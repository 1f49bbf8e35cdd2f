"""What a worker reads and sends on-chain, with its own key.

Reads answer the state machine's questions (may the worker still vote, did its vote win,
is it already on-chain); transactions are the vote and the reveal. The key stays inside the
`ChainClient`; nothing here logs or shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from web3 import Web3

from decloud.chain.client import ChainClient
from decloud.chain.deploy import Deployment
from decloud.chain.errors import reaching_node
from decloud.chain.hub import Hub, TaskView
from decloud.protocol.hub import Deal
from decloud.protocol.ids import result_hash, result_seal
from decloud.scheduler.schemas import DealTerms, WorkAssignment


@dataclass(frozen=True)
class Vote:
    """This worker's contribution to a task as the hub holds it (`CONTRIBUTION_*` status;
    status 0 and an empty hash when it has none)."""

    status: int
    result_hash: bytes


class WorkerChain:
    """The hub of one deployment, seen by one worker."""

    def __init__(self, rpc_url: str, deployment: Deployment, key: bytes) -> None:
        self.client = ChainClient(rpc_url, key)
        self.hub = Hub(self.client, deployment)

    def __repr__(self) -> str:
        return f"WorkerChain(worker={self.address}, hub={self.hub.hub.address})"

    @property
    def address(self) -> str:
        return self.client.address

    def block_time(self) -> int:
        with reaching_node():
            return int(self.client.w3.eth.get_block("latest")["timestamp"])

    def task(self, taskid: bytes) -> TaskView:
        return self.hub.task(taskid)

    def free_balance(self) -> int:
        return self.hub.account().free

    def vote(self, taskid: bytes) -> Vote:
        status, _weight, hash_ = self.client.call(
            self.hub.hub.functions.viewContribution(taskid, self.address)
        )
        return Vote(int(status), bytes(hash_))

    def is_consensus(self, taskid: bytes, digest: bytes) -> bool:
        """Whether the group voting for `digest` is the task's consensus."""
        _weight, _supporters, consensus = self.client.call(
            self.hub.hub.functions.viewGroup(taskid, result_hash(taskid, digest))
        )
        return bool(consensus)

    def contribute(self, assignment: WorkAssignment, digest: bytes, authorization: bytes) -> str:
        """Vote for `digest` with the scheduler's authorization; the transaction's hash."""
        taskid = bytes.fromhex(assignment.taskid[2:])
        receipt = self.client.transact(
            self.hub.hub.functions.contribute(
                bytes.fromhex(assignment.dealid[2:]),
                deal_of(assignment.deal).as_tuple(),
                assignment.index,
                result_hash(taskid, digest),
                result_seal(self.address, taskid, digest),
                Web3.to_checksum_address(assignment.enclave_challenge),
                b"",
                authorization,
            )
        )
        return receipt.tx_hash

    def reveal(self, taskid: bytes, digest: bytes) -> str:
        return self.hub.reveal(taskid, digest).tx_hash


def deal_of(terms: DealTerms) -> Deal:
    """The deal as the hub hashes it, from the scheduler's JSON form of it."""
    values: list[object] = []
    for item, abi_type in zip(fields(Deal), Deal.ABI_TYPES, strict=True):
        value: str = getattr(terms, item.name)
        if abi_type == "uint256":
            values.append(int(value))
        elif abi_type == "bytes32":
            values.append(bytes.fromhex(value[2:]))
        else:
            values.append(value)
    return Deal.from_tuple(tuple(values))
