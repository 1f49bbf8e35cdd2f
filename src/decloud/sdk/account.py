"""An account inside the hub: what every role deposits, withdraws and checks.

Requesters deposit to pay for deals, workerpool owners to stake for them, workers to stake
for their contributions; all withdraw what is free. Tokens move between the wallet (the
ERC-20 balance) and the hub account's free balance; the locked balance is held for running
deals and tasks, and the score is the account's reputation as a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decloud.sdk.connection import Connection, Transaction
from decloud.sdk.errors import DecloudError, InsufficientFunds, chain_errors
from decloud.sdk.values import parse_address


@dataclass(frozen=True)
class Balances:
    """An account's tokens: in its wallet, free and locked in the hub; and its score.

    Amounts are in the token's smallest unit (the devnet token has 18 decimals)."""

    address: str
    wallet: int
    free: int
    locked: int
    score: int

    def to_json(self) -> dict[str, Any]:
        """Amounts as decimal strings: they exceed what a JSON number holds exactly."""
        return {
            "address": self.address,
            "wallet": str(self.wallet),
            "free": str(self.free),
            "locked": str(self.locked),
            "score": self.score,
        }


@dataclass(frozen=True)
class Movement:
    """A deposit or withdrawal, and the balances it left."""

    transaction: Transaction
    balances: Balances

    def to_json(self) -> dict[str, Any]:
        return {"transaction": self.transaction.to_json(), "balances": self.balances.to_json()}


class Escrow:
    """Deposit, withdraw and read hub accounts, as the connection's wallet."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def balances(self, address: str | None = None) -> Balances:
        """The balances of `address` (default: the wallet's)."""
        account = self.connection.address if address is None else parse_address(address, "account")
        with chain_errors():
            held = self.connection.hub.account(account)
            wallet = self.connection.token.balance_of(account)
        return Balances(account, wallet, held.free, held.locked, held.score)

    def deposit(self, amount: int) -> Movement:
        """Move `amount` tokens from the wallet into the hub account's free balance."""
        _positive(amount)
        before = self.balances()
        if before.wallet < amount:
            raise InsufficientFunds(
                f"cannot deposit {amount}: wallet {before.address} holds {before.wallet} tokens",
                "get tokens into the wallet first (on the devnet, from a funded account)",
            )
        with chain_errors(before.address):
            receipt = self.connection.hub.deposit(amount)
        return Movement(Transaction.of(receipt), self.balances())

    def withdraw(self, amount: int) -> Movement:
        """Move `amount` tokens from the hub account's free balance back to the wallet."""
        _positive(amount)
        address = self.connection.address
        try:
            with chain_errors(address):
                receipt = self.connection.hub.withdraw(amount)
        except InsufficientFunds as error:
            now = self.balances()
            raise InsufficientFunds(
                f"cannot withdraw {amount}: the free balance of {address} is {now.free} "
                f"({now.locked} more is locked in running deals and tasks)",
                error.advice,
            ) from error
        return Movement(Transaction.of(receipt), self.balances())


def _positive(amount: int) -> None:
    if amount <= 0:
        raise DecloudError(f"the amount must be positive, not {amount}")
