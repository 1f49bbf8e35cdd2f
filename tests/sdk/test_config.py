"""The client config: read from --config, DECLOUD_CONFIG or the default path; every
missing key named with what to do; written back without losing the services' tables."""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path

import pytest

from decloud.sdk import tomlwriter
from decloud.sdk.config import ClientConfig, WalletSettings
from decloud.sdk.errors import ConfigError

HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CONTRACTS = {
    name: HUB
    for name in (
        "token", "app_registry", "dataset_registry", "workerpool_registry", "hub", "marketplace"
    )
}  # fmt: skip


def write(path: Path, document: dict[str, object]) -> Path:
    path.write_text(tomlwriter.dumps(document))
    return path


def full_document() -> dict[str, object]:
    return {
        "chain": {"rpc_url": "http://127.0.0.1:8545", "chain_id": 31337},
        "contracts": dict(CONTRACTS),
        "services": {"scheduler": "http://127.0.0.1:8701"},
        "wallet": {"keystore": "~/keys", "default": "alice"},
        "scheduler": {"port": 8701, "allowed_workers": ["0xabc"], "poll_interval_s": 0.5},
    }


def test_the_client_tables_are_read_and_the_services_tables_ignored(tmp_path: Path) -> None:
    config = ClientConfig.load(write(tmp_path / "c.toml", full_document()))
    assert config.chain.chain_id == 31337
    assert config.contracts.hub == HUB and config.contracts.chain_id == 31337
    assert config.services.scheduler == "http://127.0.0.1:8701"
    assert config.services.market is None
    assert config.wallet.keystore == Path("~/keys").expanduser()
    assert config.wallet.default == "alice"


def test_decloud_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECLOUD_CONFIG", str(write(tmp_path / "c.toml", full_document())))
    assert ClientConfig.load().source == tmp_path / "c.toml"


def test_a_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no decloud config at .*missing\.toml") as raised:
        ClientConfig.load(tmp_path / "missing.toml")
    assert "decloud devnet up" in str(raised.value.advice)
    assert "DECLOUD_CONFIG" in str(raised.value.advice)


@pytest.mark.parametrize(
    ("table", "key"), [("chain", "rpc_url"), ("chain", "chain_id"), ("contracts", "hub")]
)
def test_a_missing_key_is_named(tmp_path: Path, table: str, key: str) -> None:
    document = full_document()
    del document[table][key]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=f"no `{key}` in its \\[{table}\\] table"):
        ClientConfig.load(write(tmp_path / "c.toml", document))


def test_a_missing_table_and_wrong_values_are_named(tmp_path: Path) -> None:
    document = full_document()
    del document["contracts"]
    with pytest.raises(ConfigError, match=r"no \[contracts\] table"):
        ClientConfig.load(write(tmp_path / "a.toml", document))
    document = full_document()
    document["chain"] = {"rpc_url": "http://x", "chain_id": "31337"}
    with pytest.raises(ConfigError, match=r"\[chain\] chain_id .* must be an integer"):
        ClientConfig.load(write(tmp_path / "b.toml", document))
    document = full_document()
    document["contracts"] = {**CONTRACTS, "hub": "0x1234"}
    with pytest.raises(ConfigError, match=r"\[contracts\] hub .* is not an address"):
        ClientConfig.load(write(tmp_path / "c.toml", document))
    (tmp_path / "d.toml").write_text("[chain\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ClientConfig.load(tmp_path / "d.toml")


def test_save_keeps_the_services_tables_and_reads_back_equal(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", full_document())
    config = ClientConfig.load(path)
    (tmp_path / "c.toml").write_text(path.read_text().replace("8545", "9545"))
    config.save(path)
    saved = tomllib.loads(path.read_text())
    assert saved["scheduler"] == full_document()["scheduler"]
    assert saved["chain"]["rpc_url"] == "http://127.0.0.1:8545"
    assert ClientConfig.load(path) == config


def test_wallets_work_before_any_config_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert WalletSettings.load() == WalletSettings(keystore=tmp_path / ".decloud" / "keystore")
    with pytest.raises(ConfigError, match="no decloud config"):
        WalletSettings.load(tmp_path / "named-but-missing.toml")


def test_toml_writer_round_trips_what_tomllib_reads() -> None:
    document = {
        "top": "level",
        "a": {
            "text": 'quote " backslash \\ newline \n unicode é',
            "int": -3,
            "float": 0.25,
            "flag": True,
            "when": datetime.date(2024, 5, 1),
            "list": [1, "two", [3.5]],
            "inline": [{"k": "v"}],
            "odd key": 1,
            "sub": {"deeper": {"x": 1}},
        },
    }
    assert tomllib.loads(tomlwriter.dumps(document)) == document


def test_the_deployment_block_is_read_when_given_and_zero_otherwise(tmp_path: Path) -> None:
    assert ClientConfig.load(write(tmp_path / "a.toml", full_document())).contracts.deployed_at == 0
    document = full_document()
    document["contracts"] = {**CONTRACTS, "deployed_at": 1234}
    assert ClientConfig.load(write(tmp_path / "b.toml", document)).contracts.deployed_at == 1234
    document["contracts"] = {**CONTRACTS, "deployed_at": -1}
    with pytest.raises(ConfigError, match=r"\[contracts\] deployed_at .* is a block number"):
        ClientConfig.load(write(tmp_path / "c.toml", document))
