"""What can go wrong for a person using decloud, said so that they know what to do next.

Every SDK error is a `DecloudError`: a message that states what went wrong, in the words of
the domain (wallet, deposit, app, owner), and `advice`, the next step (a command to run, a
setting to fix). The CLI prints both and exits non-zero; a program catches the subclass it
can handle (`InsufficientFunds`: deposit more) and lets the rest through.

The chain client's own exceptions (`decloud.chain.errors`) name the contract rule that was
broken; `chain_errors` turns the ones a person causes into these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DecloudError(Exception):
    """Something a person can fix: `str(error)` says what happened, `advice` what to do."""

    def __init__(self, message: str, advice: str | None = None) -> None:
        super().__init__(message)
        self.advice = advice


class ConfigError(DecloudError):
    """The client configuration is missing, unreadable, or does not match the chain."""


class WalletError(DecloudError):
    """A wallet is missing, already exists, or cannot be unlocked."""


class WrongPassword(WalletError):
    """The password does not decrypt the wallet's keystore file."""


class WalletRequired(WalletError):
    """The operation signs, and no wallet was chosen."""


class NodeUnreachable(DecloudError):
    """The chain's JSON-RPC node does not answer."""


class UnknownResource(DecloudError):
    """No app, dataset, workerpool, deal, task or category has this identifier."""


class NotOwner(DecloudError):
    """The wallet does not own the resource (or order) it wants to act for."""


class InsufficientFunds(DecloudError):
    """Not enough tokens: in the wallet to deposit, or free in the hub to withdraw or lock."""


class NoGas(DecloudError):
    """The wallet has no native currency to pay for the transaction's gas."""


class Refused(DecloudError):
    """The chain refused the operation for a reason the message quotes."""


class OrderFileError(DecloudError):
    """An order file cannot be read as a decloud order."""


class TaskTimeout(DecloudError):
    """Watching a task ended at its timeout before the task did."""


DEVNET_ADVICE = "start one with `decloud devnet up`, or fix [chain] rpc_url in the config"


@contextmanager
def chain_errors(address: str | None = None) -> Iterator[None]:
    """Turn the chain errors a person causes into `DecloudError`s; `address` is the account
    that sends, named in the advice about gas."""
    # Imported here: the wallet commands use this module's errors, and need no web3.
    from web3.exceptions import Web3RPCError

    from decloud.chain.errors import (
        ContractRevert,
        EscrowError,
        NodeUnavailable,
        TokenError,
        TransactionFailed,
    )

    try:
        yield
    except NodeUnavailable as error:
        raise NodeUnreachable(str(error), DEVNET_ADVICE) from error
    except EscrowError as error:
        raise InsufficientFunds(
            f"the hub refused to move the funds: {error.reason}",
            "deposit more with `decloud account deposit`, or wait until running deals "
            "release the locked part (`decloud account show`)",
        ) from error
    except TokenError as error:
        raise InsufficientFunds(
            f"the payment token refused the transfer: {error.reason}",
            "get tokens into the wallet first (`decloud account show` shows its balance)",
        ) from error
    except ContractRevert as error:
        if "not the owner" in error.reason:
            raise NotOwner(
                f"{error.reason} (sender {address})",
                "use the wallet that owns it (`--wallet NAME`)",
            ) from error
        if "already registered" in error.reason:
            raise Refused(
                str(error),
                "the wallet already registered one under this name: choose another name",
            ) from error
        raise Refused(str(error)) from error
    except (TransactionFailed, Web3RPCError) as error:
        if "insufficient funds" in str(error).lower():
            raise NoGas(
                f"the account {address} cannot pay for gas",
                f"send native currency (ETH on the devnet) to {address}",
            ) from error
        raise Refused(str(error)) from error
