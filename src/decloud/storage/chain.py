"""What the result store reads on-chain: which worker proved which result of a task.

A worker proves its result by revealing the digest it voted for, once that vote won the
consensus; the hub then logs `TaskReveal(taskid, worker, result_digest)`. The trust-1 path,
`contributeAndFinalize`, logs the same event for its single worker (and records no
contribution, so the event is the one proof both paths share). The store therefore accepts
a task's result from a worker only if such an event names both, and only for the digest it
carries.

Read-only: the store holds no key and sends no transaction.
"""

from __future__ import annotations

from functools import cached_property

from web3 import Web3
from web3.contract import Contract

from decloud.chain.compiler import compile_contract
from decloud.chain.deploy import Deployment
from decloud.chain.errors import reaching_node
from decloud.protocol.orders import Eip712Domain


class ResultChain:
    """The hub of one deployment, read through one JSON-RPC node."""

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        *,
        start_block: int = 0,
        request_timeout: float = 10.0,
    ) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout}))
        self.deployment = deployment
        self.domain = Eip712Domain(chain_id=deployment.chain_id, verifying_contract=deployment.hub)
        self._start_block = start_block

    @cached_property
    def hub(self) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(self.deployment.hub),
            abi=list(compile_contract("Hub").abi),
        )

    def chain_id(self) -> int:
        with reaching_node():
            return int(self.w3.eth.chain_id)

    def revealed_digest(self, taskid: bytes, worker: str) -> bytes | None:
        """The result digest `worker` revealed for `taskid`, or None if it revealed none.

        The node filters the logs by both indexed fields, so this reads one event at most
        (a worker can reveal a task once).
        """
        with reaching_node():
            events = self.hub.events.TaskReveal().get_logs(
                argument_filters={"taskid": taskid, "worker": Web3.to_checksum_address(worker)},
                from_block=self._start_block,
            )
        for event in events:
            return bytes(event["args"]["result_digest"])
        return None

    def contribution_status(self, taskid: bytes, worker: str) -> int:
        """The status of `worker`'s contribution to `taskid` (`CONTRIBUTION_*` of
        decloud.protocol.hub), to explain why a worker that revealed nothing is refused."""
        with reaching_node():
            status, _weight, _result_hash = self.hub.functions.viewContribution(
                taskid, Web3.to_checksum_address(worker)
            ).call()
        return int(status)
