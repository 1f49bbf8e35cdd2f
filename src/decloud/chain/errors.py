"""Exceptions for everything that can go wrong between decloud and the chain.

The contracts revert with short reasons of the form `"<area>: <rule broken>"`
(`"escrow: free balance too low"`, `"match: category mismatch"`). The area names the part
of the protocol whose rule was broken, so callers can catch what they can handle
(`except EscrowError:` to ask for a deposit) and let the rest through. `revert_error` picks
the exception class from that prefix; a reason with an unknown area is still a
`ContractRevert`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import requests
from web3.exceptions import ProviderConnectionError


class ChainError(Exception):
    """Anything that went wrong talking to the chain."""


class NodeUnavailable(ChainError):
    """The JSON-RPC node could not be reached or did not answer in time."""


class TransactionFailed(ChainError):
    """A transaction failed without a revert reason: dropped, not mined in time, or a
    revert that could not be reproduced when replayed."""

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message if tx_hash is None else f"{message} (transaction {tx_hash})")
        self.tx_hash = tx_hash


class ContractRevert(ChainError):
    """A contract refused a call; `reason` is the revert string exactly as the contract
    gave it, `area` its prefix (empty when the reason has none)."""

    what: ClassVar[str] = "the contract refused the call"

    def __init__(self, reason: str, *, call: str | None = None) -> None:
        self.reason = reason
        self.area = area_of(reason)
        self.call = call
        where = f" in {call}" if call else ""
        super().__init__(f"{self.what}{where}: {reason or 'no reason given'}")


class EscrowError(ContractRevert):
    """A movement of funds inside the hub broke an escrow rule (usually: deposit more)."""

    what = "the hub's escrow refused to move the funds"


class CategoryError(ContractRevert):
    """A category does not exist or cannot be created as asked."""

    what = "the category rules were broken"


class OrderError(ContractRevert):
    """An order cannot be presigned, closed or used as given."""

    what = "the order was refused"


class MatchError(ContractRevert):
    """The four orders given to matchOrders are not compatible."""

    what = "the orders do not match"


class TaskError(ContractRevert):
    """A task operation (initialize, contribute, reveal, finalize, reopen, claim) is not
    allowed in the task's current state or by this caller."""

    what = "the task operation was refused"


class ConsensusError(ContractRevert):
    """The consensus of a task does not allow the operation (not reached, or lost)."""

    what = "the consensus rules were broken"


class CallbackError(ContractRevert):
    """A result callback was refused."""

    what = "the result callback was refused"


class RegistryError(ContractRevert):
    """An app, dataset or workerpool registry (or its ERC-721 token) refused the call."""

    what = "the registry refused the call"


class TokenError(ContractRevert):
    """The payment token (ERC-20) refused a transfer, approval or mint."""

    what = "the payment token refused the call"


class OwnershipError(ContractRevert):
    """Only the owner of the contract may do this."""

    what = "only the contract owner may do this"


class HubError(ContractRevert):
    """The hub's wiring refused the call: only its marketplace opens deals, once each."""

    what = "the hub refused the call"


_ERRORS_BY_AREA: dict[str, type[ContractRevert]] = {
    "hub": HubError,
    "escrow": EscrowError,
    "category": CategoryError,
    "order": OrderError,
    "match": MatchError,
    "task": TaskError,
    "consensus": ConsensusError,
    "callback": CallbackError,
    "app": RegistryError,
    "dataset": RegistryError,
    "workerpool": RegistryError,
    "registry": RegistryError,
    "erc721": RegistryError,
    "erc20": TokenError,
    "ownable": OwnershipError,
}


def area_of(reason: str) -> str:
    """The area prefix of a revert reason: `"escrow"` for `"escrow: free balance too low"`."""
    area, separator, _ = reason.partition(":")
    return area.strip() if separator and " " not in area.strip() else ""


def revert_error(reason: str, *, call: str | None = None) -> ContractRevert:
    """The exception that describes a revert with this reason."""
    return _ERRORS_BY_AREA.get(area_of(reason), ContractRevert)(reason, call=call)


@contextmanager
def reaching_node() -> Iterator[None]:
    """Report a node that cannot be reached as `NodeUnavailable`, whatever the transport."""
    try:
        yield
    except (requests.ConnectionError, requests.Timeout, ProviderConnectionError) as error:
        raise NodeUnavailable(f"the chain node is unreachable: {error}") from error
