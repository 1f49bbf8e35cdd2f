"""What the devnet's cast (`decloud.devnet.cast`) gets on-chain and on disk.

Every role gets tokens and a deposit in the hub: that lets a requester pay, a workerpool
owner sign orders the market accepts, and a worker stake on its contributions. The
scheduler and the workers read raw key files; the people's roles get encrypted keyfiles
for the CLI and the SDK.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import HexStr
from web3 import Web3

from decloud.chain.client import ChainClient
from decloud.chain.deploy import Deployment, deploy_protocol
from decloud.chain.errors import ChainError
from decloud.chain.hub import Hub
from decloud.chain.registries import Token, WorkerpoolRegistry
from decloud.devnet.cast import DEVNET_PASSWORD, KEYSTORE_PASSWORD_VARIABLE, SCHEDULER_ROLE

TOKEN = 10**18
"""One devnet token (DCLD) in its smallest unit: it has 18 decimals, like ether."""
FUNDING = 1_000_000 * TOKEN
"""Minted to every role's wallet."""
DEPOSIT = 10_000 * TOKEN
"""Deposited in the hub for every role: the free balance its orders and stakes use."""
WORKERPOOL_DESCRIPTION = "devnet workerpool"

_KEYFILE_WORK_FACTOR = 2**12
"""scrypt's N for devnet keyfiles, geth's `--lightkdf` (the default is 2**18): written and
unlocked in milliseconds instead of a second each; the keys are public anyway."""


@dataclass(frozen=True)
class OnChain:
    """What setting up the chain produced."""

    deployment: Deployment
    workerpool: str
    addresses: dict[str, str]


def set_up_chain(rpc_url: str, admin_key: str, keys: dict[str, str]) -> OnChain:
    """Deploy the protocol (with its default categories), fund and deposit for every role,
    and register the workerpool the scheduler runs.

    The deployer sends every transaction (it mints, deposits for each role, and registers
    the pool in its owner's name): one account's nonces, no wait for anyone else's.
    """
    admin = ChainClient(rpc_url, admin_key)
    deployment = deploy_protocol(admin)
    addresses = {role: str(Account.from_key(key).address) for role, key in keys.items()}
    token = Token(admin, deployment.token)
    token.mint(admin.address, DEPOSIT * len(addresses))
    token.approve(deployment.hub, DEPOSIT * len(addresses))
    hub = admin.contract("Hub", deployment.hub)
    for address in addresses.values():
        token.mint(address, FUNDING)
        admin.transact(hub.functions.depositFor(address, DEPOSIT))
    workerpool = WorkerpoolRegistry(admin, deployment.workerpool_registry).create_workerpool(
        WORKERPOOL_DESCRIPTION, owner=addresses[SCHEDULER_ROLE]
    )
    return OnChain(deployment, workerpool, addresses)


def write_key_file(path: Path, key: str) -> None:
    """A raw hex key, readable by its owner only, as the services read their keys."""
    _write_private(path, key.removeprefix("0x"))


def write_keyfile(path: Path, key: str) -> None:
    """An encrypted keyfile (Ethereum's "V3" format) with the devnet's password."""
    password = os.environ.get(KEYSTORE_PASSWORD_VARIABLE) or DEVNET_PASSWORD
    keyfile = Account.encrypt(HexStr(key), password, kdf="scrypt", iterations=_KEYFILE_WORK_FACTOR)
    _write_private(path, json.dumps(keyfile))


def _write_private(path: Path, text: str) -> None:
    # Created with mode 0600 from the start: never readable by others, even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")


def chain_view(rpc_url: str, deployment_file: Path, addresses: dict[str, str]) -> dict[str, Any]:
    """Chain id, head, contracts and every role's balances, read with a throwaway key
    (reads need no funds); all None or empty if the chain does not answer."""
    unknown: dict[str, Any] = {"chain_id": None, "head": None, "contracts": None, "accounts": []}
    if not deployment_file.exists():
        return unknown
    deployment = Deployment.load(deployment_file)
    try:
        hub = Hub(ChainClient(rpc_url, secrets.token_bytes(32)), deployment)
        return {
            "chain_id": deployment.chain_id,
            "head": hub.client.w3.eth.block_number,
            "contracts": deployment.to_json(),
            "accounts": [_balances(hub, role, address) for role, address in addresses.items()],
        }
    except (ChainError, OSError, ValueError):
        return unknown


def _balances(hub: Hub, role: str, address: str) -> dict[str, Any]:
    account = hub.account(address)
    return {
        "role": role,
        "address": Web3.to_checksum_address(address),
        "wallet": hub.token_balance(address),
        "free": account.free,
        "locked": account.locked,
        "score": account.score,
    }
