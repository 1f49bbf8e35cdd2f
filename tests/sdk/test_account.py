"""`decloud account`: deposits, withdrawals and balances, and the errors people meet first:
no config, a wrong password, too little money, no gas."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from eth_account import Account

from decloud.chain import ChainClient, Token
from decloud.chain.localnet import LocalMarket
from decloud.sdk.config import ChainSettings, ClientConfig
from decloud.sdk.wallet import Keystore
from tests.sdk.conftest import PASSWORD, Cli, no_secret_in

BALANCE_FIELDS = {"address", "wallet", "free", "locked", "score"}


def test_show_gives_balances_and_standing(cli: Cli, local: LocalMarket) -> None:
    shown = cli("account", "show", "--json", wallet="requester")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert set(document) == BALANCE_FIELDS | {"weight"}
    account = local["requester"].hub.account()
    assert document["address"] == local["requester"].address
    assert (document["free"], document["locked"]) == (str(account.free), str(account.locked))
    assert document["weight"] == 2
    human = cli("account", "show", local["stranger"].address)
    assert human.exit_code == 0 and "free in the hub" in human.stdout


def test_deposit_then_withdraw_moves_tokens_both_ways(cli: Cli, local: LocalMarket) -> None:
    hub = local["stranger"].hub
    before = hub.account().free
    deposited = cli("account", "deposit", "1000", "--json", wallet="stranger")
    assert deposited.exit_code == 0, deposited.output
    document = json.loads(deposited.stdout)
    assert set(document) == {"transaction", "balances"}
    assert set(document["transaction"]) == {"tx_hash", "block_number", "gas_used"}
    assert document["balances"]["free"] == str(before + 1000)
    withdrawn = cli("account", "withdraw", "1000", wallet="stranger")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert hub.account().free == before
    no_secret_in(deposited, local["stranger"].key)
    no_secret_in(withdrawn, local["stranger"].key)


def test_withdrawing_more_than_is_free_says_how_much_is(cli: Cli, local: LocalMarket) -> None:
    free = local["stranger"].hub.account().free
    refused = cli("account", "withdraw", str(free + 1), wallet="stranger")
    assert refused.exit_code == 1
    assert f"cannot withdraw {free + 1}: the free balance of" in refused.stderr
    assert f"is {free}" in refused.stderr
    assert "what to do: deposit more" in refused.stderr


def test_depositing_more_than_the_wallet_holds_is_refused_before_sending(
    cli: Cli, local: LocalMarket
) -> None:
    held = local["stranger"].hub.token_balance()
    refused = cli("account", "deposit", str(held + 1), wallet="stranger")
    assert refused.exit_code == 1
    assert f"holds {held} tokens" in refused.stderr


def test_a_wallet_without_gas_is_told_to_get_some(
    cli: Cli, local: LocalMarket, keystore: Keystore
) -> None:
    poor = Account.create()
    Token(local.admin, local.deployment.token).mint(poor.address, 10**6)
    keystore.import_key("poor", bytes(poor.key), PASSWORD, light=True)
    refused = cli("account", "deposit", "10", wallet="poor")
    assert refused.exit_code == 1
    assert f"the account {poor.address} cannot pay for gas" in refused.stderr
    assert f"send native currency (ETH on the devnet) to {poor.address}" in refused.stderr


def test_a_wrong_password_stops_before_anything_is_sent(cli: Cli, local: LocalMarket) -> None:
    nonce = local.admin.w3.eth.get_transaction_count(local["stranger"].address)
    refused = cli(
        "account", "deposit", "10", wallet="stranger", env={"DECLOUD_WALLET_PASSWORD": "nope"}
    )
    assert refused.exit_code == 1
    assert "wrong password for wallet 'stranger'" in refused.stderr
    assert local.admin.w3.eth.get_transaction_count(local["stranger"].address) == nonce


def test_the_password_can_be_typed(cli: Cli, config_file: Path) -> None:
    shown = cli(
        "account", "deposit", "1", "--json", wallet="stranger",
        env={"DECLOUD_WALLET_PASSWORD": ""}, input=f"{PASSWORD}\n",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output


def test_a_missing_config_says_how_to_make_one(cli: Cli, tmp_path: Path) -> None:
    missing = cli("account", "show", env={"DECLOUD_CONFIG": str(tmp_path / "none.toml")})
    assert missing.exit_code == 1
    assert f"no decloud config at {tmp_path / 'none.toml'}" in missing.stderr
    assert "decloud devnet up" in missing.stderr


def test_a_config_for_a_reset_chain_is_called_stale(
    cli: Cli, config_file: Path, tmp_path: Path, local: LocalMarket
) -> None:
    fresh = ChainClient(local.rpc_url, Account.create().key).address
    stale = tmp_path / "stale.toml"
    stale.write_text(config_file.read_text().replace(local.deployment.hub, fresh))
    refused = cli("category", "list", env={"DECLOUD_CONFIG": str(stale)})
    assert refused.exit_code == 1
    assert f"no hub contract at {fresh}" in refused.stderr


def test_an_unreachable_node_points_at_the_devnet(
    cli: Cli, client_config: ClientConfig, tmp_path: Path
) -> None:
    unreachable = replace(client_config, chain=ChainSettings("http://127.0.0.1:9", 31337))
    refused = cli("account", "show", env={"DECLOUD_CONFIG": str(unreachable.save(tmp_path / "c"))})
    assert refused.exit_code == 1
    assert "the chain node is unreachable" in refused.stderr
    assert "decloud devnet up" in refused.stderr


def test_a_wallet_whose_password_is_not_the_configs_is_asked_for_its_own(
    cli: Cli, config_file: Path, tmp_path: Path
) -> None:
    """A devnet's config carries its keystore's password; a wallet a person added there
    has a password of its own, which is then asked for."""
    text = config_file.read_text()
    assert "[wallet]\n" in text
    with_password = tmp_path / "devnet-like.toml"
    with_password.write_text(text.replace("[wallet]\n", '[wallet]\npassword = "devnet"\n'))

    shown = cli(
        "account", "deposit", "1", "--json", wallet="stranger",
        env={"DECLOUD_WALLET_PASSWORD": "", "DECLOUD_CONFIG": str(with_password)},
        input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert shown.exit_code == 0, shown.output
    assert "password of wallet stranger" in shown.stderr
