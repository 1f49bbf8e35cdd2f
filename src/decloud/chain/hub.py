"""Typed facades of the Hub and the Marketplace: what each role calls on-chain.

A `Hub` acts as one account (its `ChainClient`): a requester matches orders and claims, a
worker contributes and reveals, a scheduler finalizes and reopens. Arguments and results
are `decloud.protocol` values (orders, `Deal`), never raw tuples, and every revert arrives
as the typed exception of its area (`MatchError`, `TaskError`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from decloud.chain.client import ChainClient, Receipt
from decloud.chain.deploy import Deployment
from decloud.protocol.hub import Deal
from decloud.protocol.ids import (
    enclave_message,
    result_hash,
    result_seal,
    sign_enclave,
    task_id,
)
from decloud.protocol.orders import (
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    RequestOrder,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    sign_typed,
)

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class AccountBalance:
    """An account inside the hub: tokens it can withdraw or spend, tokens held for running
    deals and tasks, and its reputation as a worker."""

    free: int
    locked: int
    score: int


@dataclass(frozen=True)
class TaskView:
    """The on-chain state of a task (all zero before its first contribution)."""

    status: int
    contributors: int
    reveals: int
    winners: int
    contribution_deadline: int
    reveal_deadline: int
    total_weight: int


@dataclass(frozen=True)
class MatchedDeal:
    """A deal as matchOrders created it, with the id and the terms later calls pass back."""

    dealid: bytes
    deal: Deal
    params: str
    receipt: Receipt

    def task_id(self, index: int) -> bytes:
        return task_id(self.dealid, index)


def empty_dataset_order() -> DatasetOrder:
    """The dataset order to pass when the request names no dataset (it is ignored)."""
    return DatasetOrder(
        dataset=ZERO_ADDRESS,
        datasetprice=0,
        volume=0,
        tag=bytes(32),
        apprestrict=ZERO_ADDRESS,
        workerpoolrestrict=ZERO_ADDRESS,
        requesterrestrict=ZERO_ADDRESS,
        salt=bytes(32),
    )


class Hub:
    """The Hub and Marketplace of one deployment, seen by one account."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        self.deployment = deployment
        self.hub: Contract = client.contract("Hub", deployment.hub)
        self.marketplace: Contract = client.contract("Marketplace", deployment.marketplace)
        self.token: Contract = client.contract("Token", deployment.token)

    @property
    def address(self) -> str:
        return self.client.address

    @property
    def domain(self) -> Eip712Domain:
        """The EIP-712 domain every order and authorization is signed in."""
        return Eip712Domain(chain_id=self.deployment.chain_id, verifying_contract=self.hub.address)

    # --- escrow ------------------------------------------------------------------------

    def deposit(self, amount: int) -> Receipt:
        """Approves the hub for `amount` if needed, then moves it into the free balance."""
        allowance = self.client.call(self.token.functions.allowance(self.address, self.hub.address))
        if allowance < amount:
            self.client.transact(self.token.functions.approve(self.hub.address, amount))
        return self.client.transact(self.hub.functions.deposit(amount))

    def withdraw(self, amount: int) -> Receipt:
        return self.client.transact(self.hub.functions.withdraw(amount))

    def account(self, address: str | None = None) -> AccountBalance:
        free, locked, score = self.client.call(
            self.hub.functions.viewAccount(Web3.to_checksum_address(address or self.address))
        )
        return AccountBalance(free, locked, score)

    def kitty(self) -> int:
        return int(self.client.call(self.hub.functions.kitty()))

    def token_balance(self, address: str | None = None) -> int:
        return int(self.client.call(self.token.functions.balanceOf(address or self.address)))

    # --- orders ------------------------------------------------------------------------

    def sign(
        self, order: AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder, key: bytes
    ) -> bytes:
        return sign_typed(order, self.domain, key)

    def match_orders(
        self,
        app_order: AppOrder,
        app_sign: bytes,
        workerpool_order: WorkerpoolOrder,
        workerpool_sign: bytes,
        request_order: RequestOrder,
        request_sign: bytes,
        dataset_order: DatasetOrder | None = None,
        dataset_sign: bytes = b"",
    ) -> MatchedDeal:
        receipt = self.client.transact(
            self.marketplace.functions.matchOrders(
                app_order.as_tuple(),
                app_sign,
                (dataset_order or empty_dataset_order()).as_tuple(),
                dataset_sign,
                workerpool_order.as_tuple(),
                workerpool_sign,
                request_order.as_tuple(),
                request_sign,
            )
        )
        return deal_from_receipt(receipt)

    def close_order(
        self, order: AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder
    ) -> Receipt:
        return self._manage(order, operation=1)

    def presign_order(
        self, order: AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder
    ) -> Receipt:
        return self._manage(order, operation=0)

    def _manage(self, order: Any, operation: int) -> Receipt:
        function = {
            AppOrder: self.marketplace.functions.manageAppOrder,
            DatasetOrder: self.marketplace.functions.manageDatasetOrder,
            WorkerpoolOrder: self.marketplace.functions.manageWorkerpoolOrder,
            RequestOrder: self.marketplace.functions.manageRequestOrder,
        }[type(order)]
        return self.client.transact(function(order.as_tuple(), operation))

    # --- tasks -------------------------------------------------------------------------

    def authorize(
        self, worker: str, taskid: bytes, key: bytes, enclave: str = ZERO_ADDRESS
    ) -> bytes:
        """The scheduler's authorization for `worker` to contribute to `taskid` (signed
        with the workerpool owner's key)."""
        authorization = WorkerpoolAuthorization(
            worker=Web3.to_checksum_address(worker), taskid=taskid, enclaveChallenge=enclave
        )
        return sign_typed(authorization, self.domain, key)

    def initialize(self, deal: MatchedDeal, index: int) -> Receipt:
        return self.client.transact(
            self.hub.functions.initialize(deal.dealid, deal.deal.as_tuple(), index)
        )

    def contribute(
        self,
        deal: MatchedDeal,
        index: int,
        digest: bytes,
        authorization: bytes,
        enclave_key: bytes | None = None,
    ) -> Receipt:
        """Votes for `digest` (the canonical result digest) with the caller's stake."""
        taskid = deal.task_id(index)
        hash_, seal = result_hash(taskid, digest), result_seal(self.address, taskid, digest)
        enclave, enclave_sign = _enclave_proof(hash_, seal, enclave_key)
        return self.client.transact(
            self.hub.functions.contribute(
                deal.dealid,
                deal.deal.as_tuple(),
                index,
                hash_,
                seal,
                enclave,
                enclave_sign,
                authorization,
            )
        )

    def reveal(self, taskid: bytes, digest: bytes) -> Receipt:
        return self.client.transact(self.hub.functions.reveal(taskid, digest))

    def finalize(
        self,
        deal: MatchedDeal,
        index: int,
        contributors: list[str],
        results: bytes,
        callback_data: bytes = b"",
    ) -> Receipt:
        return self.client.transact(
            self.hub.functions.finalize(
                deal.dealid,
                deal.deal.as_tuple(),
                index,
                sort_addresses(contributors),
                results,
                callback_data,
            )
        )

    def reopen(
        self, deal: MatchedDeal, index: int, consensus: bytes, supporters: list[str]
    ) -> Receipt:
        return self.client.transact(
            self.hub.functions.reopen(
                deal.dealid, deal.deal.as_tuple(), index, consensus, sort_addresses(supporters)
            )
        )

    def claim(self, deal: MatchedDeal, index: int, contributors: list[str]) -> Receipt:
        return self.client.transact(
            self.hub.functions.claim(
                deal.dealid, deal.deal.as_tuple(), index, sort_addresses(contributors)
            )
        )

    def contribute_and_finalize(
        self,
        deal: MatchedDeal,
        index: int,
        digest: bytes,
        authorization: bytes,
        results: bytes,
        callback_data: bytes = b"",
        enclave_key: bytes | None = None,
    ) -> Receipt:
        taskid = deal.task_id(index)
        hash_, seal = result_hash(taskid, digest), result_seal(self.address, taskid, digest)
        enclave, enclave_sign = _enclave_proof(hash_, seal, enclave_key)
        return self.client.transact(
            self.hub.functions.contributeAndFinalize(
                deal.dealid,
                deal.deal.as_tuple(),
                index,
                digest,
                results,
                callback_data,
                enclave,
                enclave_sign,
                authorization,
            )
        )

    def task(self, taskid: bytes) -> TaskView:
        return TaskView(*self.client.call(self.hub.functions.viewTask(taskid)))


def deal_from_receipt(receipt: Receipt) -> MatchedDeal:
    """The deal a matchOrders transaction created, decoded from its DealCreated event."""
    event = receipt.event("DealCreated")
    return MatchedDeal(
        dealid=bytes(event.args["dealid"]),
        deal=Deal.decode(bytes(event.args["deal"])),
        params=str(event.args["params"]),
        receipt=receipt,
    )


def sort_addresses(addresses: list[str]) -> list[str]:
    """Contributor lists are passed in ascending numeric order: the hub checks they are
    sorted to rule out duplicates cheaply."""
    return sorted((Web3.to_checksum_address(a) for a in addresses), key=lambda a: int(a, 16))


def _enclave_proof(hash_: bytes, seal: bytes, enclave_key: bytes | None) -> tuple[str, bytes]:
    if enclave_key is None:
        return ZERO_ADDRESS, b""
    from eth_account import Account

    enclave = str(Account.from_key(enclave_key).address)
    return enclave, sign_enclave(enclave_message(hash_, seal), enclave_key)
