"""Send transactions and read contracts as one account, with errors that say what failed.

Every decloud service acts on the chain through one account: a scheduler finalizing tasks,
a worker contributing, a requester matching orders. `ChainClient` signs locally (the node
never holds keys), hands out nonces itself so that several threads can send at once
without waiting for each other's receipts, adds a margin to estimated gas, and turns a
contract's revert reason into the exception class of the protocol area that refused it
(`EscrowError`, `MatchError`, ...).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from requests.utils import get_environ_proxies, get_netrc_auth
from web3 import Web3
from web3.contract import Contract, ContractConstructor
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import Nonce, RPCEndpoint, TxParams, TxReceipt, Wei

from decloud.chain.compiler import CompiledContract, compile_contract
from decloud.chain.errors import (
    ChainError,
    ContractRevert,
    TransactionFailed,
    reaching_node,
    revert_error,
)
from decloud.chain.events import ChainEvent, EventDecoder

# Selector of Error(string), the ABI encoding of Vyper's assert reasons.
_ERROR_SELECTOR = "0x08c379a0"
_GWEI = 10**9
_FIRST_RECEIPT_POLL_S = 0.002
_RECEIPT_POLL_S = 0.05


@dataclass(frozen=True)
class Receipt:
    """A mined, successful transaction and the events of known contracts it emitted."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[ChainEvent, ...]
    contract_address: str | None = None

    def event(self, name: str) -> ChainEvent:
        """The first event called `name`, e.g. the `AppCreated` of a createApp call."""
        for event in self.events:
            if event.name == name:
                return event
        raise LookupError(f"transaction {self.tx_hash} emitted no {name} event")


class NonceManager:
    """Consecutive nonces for one account, handed out under a lock.

    A nonce is consumed only when the transaction using it was accepted by the node, so a
    transaction refused before sending leaves no gap that would stall every later one.
    """

    def __init__(self, pending_count: Callable[[], int]) -> None:
        self._pending_count = pending_count
        self._next: int | None = None
        self._lock = threading.Lock()

    @contextmanager
    def next_nonce(self) -> Iterator[int]:
        """The nonce to send with; it counts as used if the block exits without error."""
        with self._lock:
            if self._next is None:
                self._next = self._pending_count()
            nonce = self._next
            yield nonce
            self._next = nonce + 1

    def resync(self) -> None:
        """Forget the local count: another sender used this account, or a transaction
        was dropped. The next nonce is read from the node again."""
        with self._lock:
            self._next = None


class ChainClient:
    """One account on one chain, reached over JSON-RPC."""

    def __init__(
        self,
        rpc_url: str,
        private_key: str | bytes,
        *,
        request_timeout: float = 10.0,
        receipt_timeout: float = 120.0,
        gas_margin_percent: int = 20,
        priority_fee_wei: int = 1 * _GWEI,
    ) -> None:
        self.w3 = Web3(
            Web3.HTTPProvider(
                rpc_url,
                request_kwargs={"timeout": request_timeout},
                session=_session(rpc_url),
                # web3 checks the chain id of every call, estimate and transaction against
                # the node's, asking the node each time: one request in three, for a value
                # that never changes.
                cache_allowed_requests=True,
                cacheable_requests={RPCEndpoint("eth_chainId")},
            )
        )
        self._account: LocalAccount = Account.from_key(private_key)
        self._receipt_timeout = receipt_timeout
        self._gas_margin_percent = gas_margin_percent
        self._priority_fee_wei = priority_fee_wei
        self._nonces = NonceManager(
            lambda: self.w3.eth.get_transaction_count(self.address, "pending")
        )
        self._decoder = EventDecoder()
        self._chain_id: int | None = None

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with reaching_node():
                self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def resync_nonce(self) -> None:
        """Read the account's nonce from the node again before the next transaction.

        Needed when transactions this client sent were dropped by a reorg: the node would
        otherwise queue the next one behind the missing nonces forever.
        """
        self._nonces.resync()

    def contract(self, name: str, address: str) -> Contract:
        """The deployed contract `name` (e.g. `"Hub"`) at `address`; its events are then
        decoded in every receipt of this client."""
        return self._bind(compile_contract(name), address)

    def deploy(self, compiled: CompiledContract, *args: Any) -> Contract:
        """Deploy a contract with its constructor arguments and return it bound."""
        factory = self.w3.eth.contract(abi=list(compiled.abi), bytecode=compiled.bytecode)
        receipt = self._transact(f"{compiled.name} constructor", factory.constructor(*args))
        assert receipt.contract_address is not None
        return self._bind(compiled, receipt.contract_address)

    def transact(
        self, function: ContractFunction, *, value: int = 0, gas: int | None = None
    ) -> Receipt:
        """Send a contract call as a transaction and wait until it is mined.

        Gas is estimated (plus a margin) unless given; an estimate that reverts raises the
        revert at once, without spending gas.
        """
        return self._transact(function.fn_name, function, value=value, gas=gas)

    def call(self, function: ContractFunction) -> Any:
        """Read a view function, as this account."""
        with reaching_node():
            try:
                return function.call({"from": self.address})
            except ContractLogicError as error:
                raise _revert(error, function.fn_name) from error

    def _bind(self, compiled: CompiledContract, address: str) -> Contract:
        contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=list(compiled.abi)
        )
        self._decoder.add(contract)
        return contract

    def _transact(
        self,
        what: str,
        transactable: ContractFunction | ContractConstructor,
        *,
        value: int = 0,
        gas: int | None = None,
    ) -> Receipt:
        with reaching_node():
            # Built once, with the gas filled in after: encoding the call is a large part of
            # a transaction's CPU, and estimating through the contract would encode it again.
            transaction = transactable.build_transaction(
                {
                    "from": self.address,
                    "value": Wei(value),
                    "chainId": self.chain_id,
                    **self._fees(),
                    "gas": gas or 0,
                }
            )
            if gas is None:
                transaction["gas"] = self._estimate(what, transaction)
            tx_hash = self._sign_and_send(transaction)
            return self._wait_for(what, tx_hash, transaction)

    def _estimate(self, what: str, transaction: TxParams) -> int:
        call: TxParams = {
            "from": transaction["from"],
            "data": transaction["data"],
            "value": transaction["value"],
        }
        if transaction.get("to"):
            call["to"] = transaction["to"]
        try:
            estimate = self.w3.eth.estimate_gas(call)
        except ContractLogicError as error:
            raise _revert(error, what) from error
        return estimate * (100 + self._gas_margin_percent) // 100

    def _fees(self) -> TxParams:
        """EIP-1559 fees that survive a few blocks of rising base fee; on anvil, where
        blocks are nearly empty, they stay close to the base fee."""
        # Only the base fee is needed: the raw block skips web3's formatting of all of it.
        response = self.w3.provider.make_request(
            RPCEndpoint("eth_getBlockByNumber"), ["latest", False]
        )
        if "error" in response or not isinstance(response.get("result"), dict):
            raise TransactionFailed(f"the node did not return its latest block: {response}")
        base_fee = int(response["result"].get("baseFeePerGas", "0x0"), 16)
        return {
            "maxPriorityFeePerGas": Wei(self._priority_fee_wei),
            "maxFeePerGas": Wei(2 * base_fee + self._priority_fee_wei),
        }

    def _sign_and_send(self, transaction: TxParams) -> HexBytes:
        """Send with the next local nonce; on a nonce error, resync once and retry."""
        for attempt in range(2):
            try:
                with self._nonces.next_nonce() as nonce:
                    transaction["nonce"] = Nonce(nonce)
                    # web3's TxParams and eth-account's dict describe the same fields.
                    signed = self._account.sign_transaction(cast(dict[str, Any], transaction))
                    return self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as error:
                if attempt or not _is_nonce_error(error):
                    raise TransactionFailed(f"the node refused the transaction: {error}") from error
                self._nonces.resync()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _wait_for(self, what: str, tx_hash: HexBytes, transaction: TxParams) -> Receipt:
        """Poll for the receipt, soon at first: a node mining on demand has it within a few
        milliseconds, while web3's fixed poll interval would wait tens of them."""
        deadline = time.monotonic() + self._receipt_timeout
        delay = _FIRST_RECEIPT_POLL_S
        while True:
            try:
                mined = self.w3.eth.get_transaction_receipt(tx_hash)
                break
            except TransactionNotFound:
                pass
            if time.monotonic() >= deadline:
                # The node may have dropped it or queued it behind a nonce gap: ask again.
                self._nonces.resync()
                raise TransactionFailed(
                    f"{what} was not mined within {self._receipt_timeout} s",
                    tx_hash=tx_hash.to_0x_hex(),
                )
            time.sleep(delay)
            delay = min(2 * delay, _RECEIPT_POLL_S)
        if mined["status"] != 1:
            raise self._explain_failure(what, transaction, mined)
        return self._receipt(mined)

    def _explain_failure(self, what: str, transaction: TxParams, mined: TxReceipt) -> ChainError:
        """Find out why a mined transaction failed by replaying it on the state before its
        block: receipts carry no revert reason."""
        replay: TxParams = {
            "from": transaction["from"],
            "data": transaction["data"],
            "value": transaction["value"],
            "gas": transaction["gas"],
        }
        if transaction.get("to"):
            replay["to"] = transaction["to"]
        try:
            self.w3.eth.call(replay, block_identifier=mined["blockNumber"] - 1)
        except ContractLogicError as error:
            return _revert(error, what)
        except Web3RPCError as error:
            return TransactionFailed(f"{what} failed on-chain: {error}", tx_hash=_hex(mined))
        return TransactionFailed(
            f"{what} failed on-chain but succeeds when replayed (out of gas, or state changed "
            "by an earlier transaction of its block)",
            tx_hash=_hex(mined),
        )

    def _receipt(self, mined: TxReceipt) -> Receipt:
        events = (self._decoder.decode(log) for log in mined["logs"])
        return Receipt(
            tx_hash=_hex(mined),
            block_number=mined["blockNumber"],
            gas_used=mined["gasUsed"],
            events=tuple(event for event in events if event is not None),
            contract_address=mined.get("contractAddress"),
        )


def _session(rpc_url: str) -> requests.Session:
    """A session that reads the proxy, CA bundle and netrc settings of the environment once,
    here: requests would read them again for every request, about a millisecond of CPU each
    time, for settings that a running service does not change."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(get_environ_proxies(rpc_url))
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    session.auth = get_netrc_auth(rpc_url)
    return session


def _hex(mined: TxReceipt) -> str:
    return HexBytes(mined["transactionHash"]).to_0x_hex()


def _is_nonce_error(error: Web3RPCError) -> bool:
    message = error.message.lower()
    return "nonce" in message or "already known" in message


def _revert(error: ContractLogicError, call: str) -> ContractRevert:
    return revert_error(_revert_reason(error), call=call)


def _revert_reason(error: ContractLogicError) -> str:
    """The revert string, decoded from the revert data when the node returned it."""
    data = error.data
    if isinstance(data, str) and data.startswith(_ERROR_SELECTOR):
        (reason,) = abi_decode(["string"], bytes.fromhex(data[len(_ERROR_SELECTOR) :]))
        return str(reason)
    return (error.message or "").removeprefix("execution reverted").removeprefix(":").strip()
