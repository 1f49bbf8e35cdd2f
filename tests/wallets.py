"""Wallets for the parties of a LocalMarket, as the CLI and the SDK use them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from decloud.chain.localnet import LocalMarket
from decloud.sdk.wallet import Keystore


def keystore_of(
    local: LocalMarket, names: Iterable[str], directory: Path, password: str
) -> Keystore:
    """A keystore in `directory` with a wallet per party, named after it (light scrypt:
    unlocking is instant)."""
    keystore = Keystore(directory)
    for name in names:
        keystore.import_key(name, local[name].key, password, light=True)
    return keystore
