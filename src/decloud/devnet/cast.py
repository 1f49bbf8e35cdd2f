"""The devnet's cast: the roles that get one of anvil's dev accounts each.

Anvil funds the accounts of a well-known mnemonic; the devnet gives account 0 to the
deployer (who owns the devnet token, so it can mint) and the next ones to these roles, in
this order, so a devnet is the same every time and its keys are public test keys, worth
nothing anywhere else.
"""

from __future__ import annotations

PEOPLE = ("requester", "app_developer", "dataset_owner", "workerpool_owner")
"""The roles a person plays with the CLI: each gets an encrypted keyfile in the keystore."""
DEVELOPER_ROLE = "app_developer"
"""Owns the sample apps the devnet registers, and signs their orders."""
SCHEDULER_ROLE = "workerpool_owner"
"""The scheduler runs the workerpool as its owner: it signs authorizations and finalizes."""
DEFAULT_ROLE = "requester"
"""The role the CLI acts as unless told otherwise."""
KEYSTORE_PASSWORD_VARIABLE = "DECLOUD_WALLET_PASSWORD"
DEVNET_PASSWORD = "devnet"
"""Password of the devnet's keyfiles when DECLOUD_WALLET_PASSWORD is unset: a convenience
that is fine only because the keys are anvil's public test keys."""


def worker_names(count: int) -> tuple[str, ...]:
    return tuple(f"worker-{index}" for index in range(1, count + 1))


def roles(workers: int) -> tuple[str, ...]:
    """Every funded role, in the order it takes anvil's accounts 1, 2, ..."""
    return (*PEOPLE, *worker_names(workers))
