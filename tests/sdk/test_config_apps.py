"""The config's optional [apps] table: names for app addresses, checked when read and kept
when the config is written back."""

from __future__ import annotations

from pathlib import Path

import pytest

from decloud.sdk.config import ClientConfig
from decloud.sdk.errors import ConfigError
from tests.sdk.test_config import HUB, full_document, write


def test_apps_are_read_checksummed_and_written_back(tmp_path: Path) -> None:
    document = full_document() | {"apps": {"mandelbrot": HUB.lower(), "ffmpeg-wasm": HUB}}
    config = ClientConfig.load(write(tmp_path / "c.toml", document))

    assert config.apps == {"mandelbrot": HUB, "ffmpeg-wasm": HUB}
    assert ClientConfig.load(config.save(tmp_path / "again.toml")).apps == config.apps


def test_a_config_without_apps_has_none(tmp_path: Path) -> None:
    assert ClientConfig.load(write(tmp_path / "c.toml", full_document())).apps == {}


def test_an_app_that_is_not_an_address_is_named(tmp_path: Path) -> None:
    document = full_document() | {"apps": {"mandelbrot": "0x1234"}}
    with pytest.raises(ConfigError, match=r"\[apps\] mandelbrot in .* is not an address"):
        ClientConfig.load(write(tmp_path / "c.toml", document))
