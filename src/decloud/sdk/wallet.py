"""Wallets: Ethereum keys kept encrypted in a keystore directory.

Each wallet is one file, `<keystore>/<name>.json`, in the Web3 Secret Storage format that
geth, Foundry and eth-account read (scrypt key derivation, AES-128-CTR), readable by its
owner only (0600, in a 0700 directory). A key leaves the file only when the wallet is
unlocked with its password, and only as a `Wallet`, which never shows it: not in `repr`, not
in an error, not in any output.

The password comes from the caller: the CLI reads `DECLOUD_WALLET_PASSWORD`, else asks.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from decloud.sdk.errors import WalletError, WalletRequired, WrongPassword

PASSWORD_VARIABLE = "DECLOUD_WALLET_PASSWORD"
STANDARD_SCRYPT_N = 2**18
"""geth's standard scrypt work factor: about a second to unlock, which is what makes a
stolen file expensive to brute-force."""
LIGHT_SCRYPT_N = 2**12
"""geth's `--lightkdf`: for throwaway devnet wallets, unlocked in milliseconds."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def password_from_env() -> str | None:
    """The wallet password from `DECLOUD_WALLET_PASSWORD`, for scripts and CI; empty counts
    as unset, since no wallet has an empty password."""
    return os.environ.get(PASSWORD_VARIABLE) or None


@dataclass(frozen=True)
class WalletInfo:
    """What anyone may see of a wallet: its name, address and file."""

    name: str
    address: str
    file: Path


@dataclass(frozen=True)
class Wallet:
    """An unlocked wallet: it signs transactions and orders as `address`."""

    name: str
    address: str
    private_key: bytes = field(repr=False)
    """Hand it only to signers (`ChainClient`, `sign_typed`); never print or log it."""


class Keystore:
    """A directory of encrypted wallets."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser()

    def create(self, name: str, password: str, *, light: bool = False) -> WalletInfo:
        """A new wallet with a fresh random key."""
        return self.import_key(name, bytes(Account.create().key), password, light=light)

    def import_key(
        self, name: str, private_key: str | bytes, password: str, *, light: bool = False
    ) -> WalletInfo:
        """Keep an existing key (hex or bytes) as wallet `name`."""
        path = self._path(name)
        if path.exists():
            raise WalletError(
                f"a wallet named {name!r} already exists ({path})", "choose another name"
            )
        if not password:
            raise WalletError("an empty password protects nothing", "give a password")
        account = _account(private_key)
        known = self._named(account.address)
        if known is not None:
            raise WalletError(
                f"this key is already in the keystore as wallet {known!r}",
                f"use `--wallet {known}`",
            )
        encrypted = Account.encrypt(
            account.key, password, kdf="scrypt", iterations=LIGHT_SCRYPT_N if light else None
        )
        _write_private(path, json.dumps(encrypted))
        return WalletInfo(name, account.address, path)

    def list(self) -> list[WalletInfo]:
        """Every wallet, by name."""
        if not self.directory.is_dir():
            return []
        return [self.show(path.stem) for path in sorted(self.directory.glob("*.json"))]

    def show(self, name: str) -> WalletInfo:
        """A wallet's address and file, without unlocking it."""
        path = self._existing(name)
        return WalletInfo(name, str(to_checksum_address(str(_read_keyfile(path)["address"]))), path)

    def unlock(self, name: str, password: str) -> Wallet:
        """The wallet, decrypted with `password`."""
        path = self._existing(name)
        try:
            key = Account.decrypt(_read_keyfile(path), password)
        except ValueError as error:
            raise WrongPassword(
                f"wrong password for wallet {name!r}",
                f"type the password given when the wallet was created, or fix {PASSWORD_VARIABLE}",
            ) from error
        return Wallet(name, Account.from_key(key).address, bytes(key))

    def choose(self, name: str | None, default: str | None) -> str:
        """The wallet a command acts as: the one named, else the configured default, else
        the only wallet of the keystore."""
        chosen = name or default
        if chosen is not None:
            return chosen
        wallets = self.list()
        if len(wallets) == 1:
            return wallets[0].name
        if not wallets:
            raise WalletRequired(
                f"no wallet in {self.directory}",
                "create one with `decloud wallet create NAME`, or import a key with "
                "`decloud wallet import NAME`",
            )
        raise WalletRequired(
            f"{len(wallets)} wallets in {self.directory} and none chosen",
            "pass --wallet NAME, set DECLOUD_WALLET, or set `default` in the config's "
            "[wallet] table",
        )

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise WalletError(
                f"{name!r} is not a wallet name",
                "use letters, digits, '.', '_' and '-' (at most 64), starting with a letter "
                "or digit",
            )
        return self.directory / f"{name}.json"

    def _existing(self, name: str) -> Path:
        path = self._path(name)
        if not path.is_file():
            raise WalletError(
                f"no wallet named {name!r} in {self.directory}",
                "see `decloud wallet list`, or create it with `decloud wallet create`",
            )
        return path

    def _named(self, address: str) -> str | None:
        return next((w.name for w in self.list() if w.address == address), None)


def _account(private_key: str | bytes) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(private_key)
    except (ValueError, TypeError) as error:
        # The error text would quote the key: say only what is wrong with it.
        raise WalletError(
            "that is not a private key", "give the 32-byte key as 64 hex digits"
        ) from error
    return account


def _read_keyfile(path: Path) -> dict[str, object]:
    try:
        keyfile: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise WalletError(
            f"the keystore file {path} cannot be read: {error}",
            "restore it from a backup, or import the key again under another name",
        ) from error
    if "address" not in keyfile or "crypto" not in keyfile:
        raise WalletError(f"{path} is not a keystore file", "remove it from the keystore")
    return keyfile


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only, from the first byte on: a file made with
    default permissions and chmod-ed afterwards would be readable for a moment."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
