"""The devnet's directory and config file, without a chain: what is written where, and
that every service accepts its table."""

from __future__ import annotations

import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from decloud.chain.deploy import Deployment
from decloud.devnet import config as config_file
from decloud.devnet.config import Plan, Ports, worker_environment
from decloud.devnet.layout import CONFIG_VARIABLE, Layout, LayoutError
from decloud.market.settings import MarketSettings
from decloud.scheduler.settings import SchedulerSettings
from decloud.service.settings import CONFIG_FILE_VARIABLE, load_settings
from decloud.storage.settings import StorageSettings
from decloud.worker.settings import load_worker_settings

DEPLOYMENT = Deployment(
    chain_id=31337,
    token="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    app_registry="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    dataset_registry="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    workerpool_registry="0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    hub="0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
    marketplace="0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
)
WORKERPOOL = "0x72c54137382711007C0f809657dEfCfec00E4F25"
MANDELBROT = "0x2E1312C0f744b3B72aDd774F01638580550586e9"


def plan(root: Path, workers: int = 2) -> Plan:
    return Plan(
        layout=Layout(root),
        ports=Ports(chain=8545, market=8700, storage=8702, scheduler=8701),
        deployment=DEPLOYMENT,
        workerpool=WORKERPOOL,
        workers=workers,
        addresses={"requester": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
        apps={"mandelbrot": MANDELBROT},
    )


def test_the_config_variable_is_the_one_the_services_read() -> None:
    assert CONFIG_VARIABLE == CONFIG_FILE_VARIABLE


def test_every_service_accepts_its_table_of_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config_file.write(path, plan(tmp_path / "devnet"))

    market = load_settings(MarketSettings, "market", path, environ={})
    storage = load_settings(StorageSettings, "storage", path, environ={})
    scheduler = load_settings(SchedulerSettings, "scheduler", path, environ={})
    worker = load_worker_settings(path, environ={})

    assert (market.port, storage.port, scheduler.port) == (8700, 8702, 8701)
    assert scheduler.workerpool == WORKERPOOL
    assert scheduler.owner_key_file == tmp_path / "devnet" / "keys" / "workerpool_owner.key"
    assert worker.key_file == tmp_path / "devnet" / "keys" / "worker-1.key"
    assert worker.scheduler_url == "http://127.0.0.1:8701"


def test_the_other_workers_run_with_their_own_key_and_state(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    layout = Layout(tmp_path / "devnet")
    config_file.write(path, plan(layout.root))

    worker = load_worker_settings(path, environ=worker_environment(layout, "worker-2"))

    assert worker.key_file == layout.key_file("worker-2")
    assert worker.state_dir == layout.worker_state("worker-2")


def test_the_client_tables_name_the_chain_the_contracts_the_services_and_the_wallet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DECLOUD_WALLET_PASSWORD", raising=False)
    path = tmp_path / "config.toml"
    config_file.write(path, plan(tmp_path / "devnet"))
    document = tomllib.loads(path.read_text())

    assert document["chain"] == {"rpc_url": "http://127.0.0.1:8545", "chain_id": 31337}
    assert document["contracts"] == {
        name: value for name, value in DEPLOYMENT.to_json().items() if name != "chain_id"
    }
    assert document["services"] == {
        "market": "http://127.0.0.1:8700",
        "storage": "http://127.0.0.1:8702",
        "scheduler": "http://127.0.0.1:8701",
    }
    assert document["wallet"] == {
        "keystore": str(tmp_path / "devnet" / "keystore"),
        "default": "requester",
        "password": "devnet",
    }
    assert config_file.devnet_dir(path) == tmp_path / "devnet"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the password is the owner's to read"


def test_a_keystore_written_with_a_password_of_ones_own_does_not_get_it_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECLOUD_WALLET_PASSWORD", "a password of one's own")
    path = tmp_path / "config.toml"
    config_file.write(path, plan(tmp_path / "devnet"))

    assert "password" not in tomllib.loads(path.read_text())["wallet"]
    assert "a password of one's own" not in path.read_text()


def test_the_apps_table_names_each_sample_app_by_its_address(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config_file.write(path, plan(tmp_path / "devnet"))
    assert tomllib.loads(path.read_text())["apps"] == {"mandelbrot": MANDELBROT}


def test_without_workers_there_is_no_worker_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config_file.write(path, plan(tmp_path / "devnet", workers=0))
    assert "worker" not in tomllib.loads(path.read_text())


def test_a_config_file_no_devnet_wrote_names_no_devnet(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[market]\nport = 1\n")
    assert config_file.devnet_dir(path) is None


def test_the_devnet_directory_is_private_and_removed_whole(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "devnet")
    layout.create()
    assert stat.S_IMODE(layout.root.stat().st_mode) == 0o700
    layout.log("market").write_text("log")

    layout.clear(keep_logs=False)

    assert not layout.root.exists()


def test_keep_logs_keeps_only_the_logs(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "devnet")
    layout.create()
    layout.log("market").write_text("log")
    layout.key_file("worker-1").write_text("key")

    layout.clear(keep_logs=True)

    assert [entry.name for entry in layout.root.iterdir()] == ["logs"]
    assert layout.log("market").read_text() == "log"


def test_a_directory_holding_other_files_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(LayoutError, match=r"thesis\.tex"):
        Layout(tmp_path).create()
    assert (tmp_path / "thesis.tex").exists()


def test_the_devnet_command_starts_without_importing_the_chain_client() -> None:
    """`up` starts the service launcher before it imports web3 (seconds): see layout.py."""
    probe = "import sys, decloud.devnet.cli; print(sorted({'web3', 'vyper'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
