"""Wallets: encrypted keystore files only their owner can read, unlocked by password, and
keys that never show in any output."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from eth_account import Account

from decloud.sdk.errors import WalletError, WalletRequired, WrongPassword
from decloud.sdk.wallet import STANDARD_SCRYPT_N, Keystore
from tests.sdk.conftest import PASSWORD, Cli, no_secret_in

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


def test_an_imported_key_is_kept_encrypted_and_owner_only(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path / "keystore")
    info = keystore.import_key("alice", KEY, PASSWORD, light=True)
    assert info.address == KEY_ADDRESS
    assert stat.S_IMODE(info.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keystore.directory.stat().st_mode) == 0o700
    text = info.file.read_text()
    assert KEY.hex() not in text.lower()
    assert Account.decrypt(json.loads(text), PASSWORD) == KEY
    unlocked = keystore.unlock("alice", PASSWORD)
    assert (unlocked.address, unlocked.private_key) == (KEY_ADDRESS, KEY)
    assert KEY.hex() not in repr(unlocked).lower()


def test_a_wrong_password_is_said_plainly(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path)
    keystore.import_key("alice", KEY, PASSWORD, light=True)
    with pytest.raises(WrongPassword, match="wrong password for wallet 'alice'"):
        keystore.unlock("alice", "not it")


def test_names_and_keys_are_unique_and_names_stay_in_the_keystore(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path)
    keystore.import_key("alice", KEY, PASSWORD, light=True)
    with pytest.raises(WalletError, match="already exists"):
        keystore.create("alice", PASSWORD, light=True)
    with pytest.raises(WalletError, match="already in the keystore as wallet 'alice'"):
        keystore.import_key("bob", "0x" + KEY.hex(), PASSWORD, light=True)
    with pytest.raises(WalletError, match="is not a wallet name"):
        keystore.create("../escape", PASSWORD, light=True)
    with pytest.raises(WalletError, match="not a private key") as raised:
        keystore.import_key("carol", "zz" + KEY.hex()[2:], PASSWORD, light=True)
    assert KEY.hex()[2:] not in str(raised.value)


def test_the_wallet_chosen_is_the_named_the_default_or_the_only_one(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path)
    with pytest.raises(WalletRequired, match="no wallet in"):
        keystore.choose(None, None)
    keystore.create("alice", PASSWORD, light=True)
    assert keystore.choose(None, None) == "alice"
    keystore.create("bob", PASSWORD, light=True)
    assert keystore.choose(None, "bob") == "bob"
    assert keystore.choose("alice", "bob") == "alice"
    with pytest.raises(WalletRequired, match="2 wallets") as raised:
        keystore.choose(None, None)
    assert "--wallet" in str(raised.value.advice)


def test_cli_create_list_show(offline_cli: Cli) -> None:
    cli = offline_cli
    env = {"DECLOUD_WALLET_PASSWORD": PASSWORD}
    created = cli("wallet", "create", "alice", "--json", env=env)
    assert created.exit_code == 0, created.output
    document = json.loads(created.stdout)
    assert set(document) == {"name", "address", "file", "default"}
    assert document["name"] == "alice" and document["default"] is False
    keyfile = json.loads(Path(document["file"]).read_text())
    assert keyfile["crypto"]["kdfparams"]["n"] == STANDARD_SCRYPT_N
    listed = json.loads(cli("wallet", "list", "--json").stdout)
    assert listed == {"wallets": [document]}
    shown = cli("wallet", "show", "--json")
    assert json.loads(shown.stdout) == document
    human = cli("wallet", "list")
    assert human.exit_code == 0 and document["address"] in human.stdout


def test_cli_import_from_a_prompt_or_a_file_never_shows_the_key(
    offline_cli: Cli, tmp_path: Path
) -> None:
    cli = offline_cli
    prompted = cli(
        "wallet", "import", "alice", "--light-kdf", input=f"{KEY.hex()}\n{PASSWORD}\n{PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert KEY_ADDRESS in prompted.stdout
    no_secret_in(prompted, KEY)
    key_file = tmp_path / "key.hex"
    key_file.write_text(KEY.hex())
    again = cli(
        "wallet", "import", "bob", "--key-file", str(key_file), "--light-kdf", "--json",
        env={"DECLOUD_WALLET_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert again.exit_code == 1
    assert "already in the keystore as wallet 'alice'" in again.stderr
    no_secret_in(again, KEY)
    other = Account.create()
    key_file.write_text(bytes(other.key).hex())
    imported = cli(
        "wallet", "import", "carol", "--key-file", str(key_file), "--light-kdf", "--json",
        env={"DECLOUD_WALLET_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    document = json.loads(imported.stdout)
    assert set(document) == {"name", "address", "file", "default"}
    assert document["address"] == other.address
    no_secret_in(imported, bytes(other.key))


def test_cli_errors_exit_non_zero_with_advice(offline_cli: Cli) -> None:
    missing = offline_cli("wallet", "show", "nobody")
    assert missing.exit_code == 1
    assert "no wallet named 'nobody'" in missing.stderr
    assert "what to do: see `decloud wallet list`" in missing.stderr
