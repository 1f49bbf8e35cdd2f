"""`up` refuses what it must not do and cleans up after a failure, without a real chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from decloud.devnet.launcher import StartError
from decloud.devnet.layout import Layout
from decloud.devnet.lifecycle import DevnetError, UpOptions, down, up


def test_up_never_overwrites_a_config_file_no_devnet_wrote(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[market]\nport = 8700\n")

    with pytest.raises(DevnetError, match="no devnet wrote it"):
        up(UpOptions(config=config, root=tmp_path / "devnet", workers=0))

    assert config.read_text() == "[market]\nport = 8700\n"
    assert not (tmp_path / "devnet").exists()


def test_a_chain_that_does_not_start_fails_up_with_its_log_and_leaves_only_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "anvil"
    broken.write_text("#!/bin/sh\necho 'anvil: cannot bind' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("DECLOUD_ANVIL", str(broken))
    config, layout = tmp_path / "config.toml", Layout(tmp_path / "devnet")

    with pytest.raises(StartError, match="anvil exited while starting") as failure:
        up(UpOptions(config=config, root=layout.root, workers=1, timeout_s=10))

    assert "anvil: cannot bind" in str(failure.value)
    assert not config.exists()
    assert [entry.name for entry in layout.root.iterdir()] == ["logs"]


def test_down_without_a_devnet_stops_nothing(tmp_path: Path) -> None:
    stopped = down(tmp_path / "config.toml", tmp_path / "devnet")
    assert stopped.dir is None and stopped.stopped == []
