"""What a worker reads and sends on-chain, with its own key.

Reads answer the state machine's questions (may the worker still vote, did its vote win,
is it already on-chain); transactions are the vote and the reveal. The key stays inside the
`ChainClient`; nothing here logs or shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from eth_abi.abi import decode, encode
from eth_typing import ABIFunction
from eth_utils.abi import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)
from web3 import Web3
from web3.types import RPCEndpoint

from decloud.chain.client import ChainClient
from decloud.chain.deploy import Deployment
from decloud.chain.errors import ChainError, reaching_node
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
    """The hub of one deployment, seen by one worker.

    Reads go to the node as plain `eth_call`s encoded from the hub's ABI: a worker makes
    about ten of them per replicate, and web3's contract calls cost several milliseconds of
    CPU each, which on a small machine is time taken from the apps and the other services.
    """

    def __init__(self, rpc_url: str, deployment: Deployment, key: bytes) -> None:
        self.client = ChainClient(rpc_url, key)
        self.hub = Hub(self.client, deployment)
        self._views = {
            item["name"]: _View.of(item)
            for item in self.hub.hub.abi
            if item["type"] == "function" and item["name"] in VIEWS
        }

    def __repr__(self) -> str:
        return f"WorkerChain(worker={self.address}, hub={self.hub.hub.address})"

    @property
    def address(self) -> str:
        return self.client.address

    def block_time(self) -> int:
        block = self._rpc("eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)

    def task(self, taskid: bytes) -> TaskView:
        return TaskView(*self._read("viewTask", taskid))

    def free_balance(self) -> int:
        free, _locked, _score = self._read("viewAccount", self.address)
        return int(free)

    def vote(self, taskid: bytes) -> Vote:
        status, _weight, hash_ = self._read("viewContribution", taskid, self.address)
        return Vote(int(status), bytes(hash_))

    def is_consensus(self, taskid: bytes, digest: bytes) -> bool:
        """Whether the group voting for `digest` is the task's consensus."""
        _weight, _supporters, consensus = self._read(
            "viewGroup", taskid, result_hash(taskid, digest)
        )
        return bool(consensus)

    def _read(self, name: str, *args: Any) -> tuple[Any, ...]:
        view = self._views[name]
        call = {"to": self.hub.hub.address, "data": "0x" + view.calldata(args).hex()}
        return view.decode(bytes.fromhex(self._rpc("eth_call", [call, "latest"])[2:]))

    def _rpc(self, method: str, params: list[Any]) -> Any:
        with reaching_node():
            answer = self.client.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in answer:
            raise ChainError(f"the node refused {method}: {answer['error']}")
        return answer["result"]

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


VIEWS = ("viewTask", "viewAccount", "viewContribution", "viewGroup")


@dataclass(frozen=True)
class _View:
    """A view function of the hub: its selector, its argument and result types, and whether
    it returns one struct (whose fields are then the result)."""

    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    struct: bool

    @classmethod
    def of(cls, abi: ABIFunction) -> _View:
        outputs = tuple(get_abi_output_types(abi))
        return cls(
            selector=function_abi_to_4byte_selector(abi),
            inputs=tuple(get_abi_input_types(abi)),
            outputs=outputs,
            struct=len(outputs) == 1 and outputs[0].startswith("("),
        )

    def calldata(self, args: tuple[Any, ...]) -> bytes:
        return self.selector + encode(self.inputs, args)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        values = decode(self.outputs, data)
        return tuple(values[0]) if self.struct else tuple(values)


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
