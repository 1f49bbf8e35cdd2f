"""The config file's TOML reads back as written, whatever the strings hold."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from decloud.devnet.tomlfile import dumps


def test_tables_sub_tables_and_every_value_type_read_back_as_written() -> None:
    document = {
        "chain": {"rpc_url": "http://127.0.0.1:8545", "chain_id": 31337},
        "scheduler": {"poll_interval_s": 0.2, "debug": False, "workers": ["0xab", "0xcd"]},
        "devnet": {"dir": Path("/tmp/a b"), "accounts": {"worker-1": "0x01", "a.b": "0x02"}},
    }

    read = tomllib.loads(dumps(document))

    assert read == {
        "chain": {"rpc_url": "http://127.0.0.1:8545", "chain_id": 31337},
        "scheduler": {"poll_interval_s": 0.2, "debug": False, "workers": ["0xab", "0xcd"]},
        "devnet": {"dir": "/tmp/a b", "accounts": {"worker-1": "0x01", "a.b": "0x02"}},
    }


@pytest.mark.parametrize(
    "text", ['quote " and backslash \\', "tab\tnewline\ncr\r", "del\x7f nul\x00", "é ✓ 𝄞", ""]
)
def test_strings_with_characters_toml_must_escape_read_back_unchanged(text: str) -> None:
    assert tomllib.loads(dumps({"t": {"s": text}}))["t"]["s"] == text


def test_a_value_toml_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="no place"):
        dumps({"t": {"x": float("nan")}})
