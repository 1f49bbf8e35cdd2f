"""`decloud app|dataset|workerpool`: registering resources with checksums computed as
workers verify them, showing them, and refusing whoever does not own them."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
from pathlib import Path

from decloud.chain.localnet import LocalMarket
from decloud.runtime.oci import _first_image_id
from tests.sdk.conftest import Cli

APP_FIELDS = {"address", "owner", "name", "type", "multiaddr", "checksum", "mrenclave", "tee"}
DATASET_FIELDS = {"address", "owner", "name", "multiaddr", "checksum"}
POOL_FIELDS = {"address", "owner", "description", "worker_stake_ratio", "scheduler_reward_ratio"}


def unique(name: str) -> str:
    """Names are unique per owner, and the chain lives for the whole session."""
    return f"{name}-{secrets.token_hex(4)}"


def docker_archive(path: Path) -> Path:
    """A minimal `docker save` archive: a manifest naming one image config."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["hello:1"], "Layers": []}])
    with tarfile.open(path, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_wasm_app_is_registered_with_its_module_checksum(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    module = tmp_path / "app.wasm"
    module.write_bytes(b"\0asm\1\0\0\0")
    name = unique("mandelbrot")
    deployed = cli(
        "app", "deploy", name, "--type", "WASM", "--multiaddr", "ipfs://app.wasm",
        "--file", str(module), "--json", wallet="app_owner",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    document = json.loads(deployed.stdout)
    assert set(document) == APP_FIELDS
    assert document["checksum"] == "0x" + hashlib.sha256(module.read_bytes()).hexdigest()
    assert (document["name"], document["type"], document["tee"]) == (name, "WASM", False)
    assert document["owner"] == local["app_owner"].address
    shown = cli("app", "show", document["address"].lower(), "--json")
    assert json.loads(shown.stdout) == document
    human = cli("app", "show", document["address"])
    assert human.exit_code == 0 and name in human.stdout


def test_an_oci_app_checksum_is_the_image_id_the_runtime_checks(cli: Cli, tmp_path: Path) -> None:
    archive = docker_archive(tmp_path / "image.tar")
    deployed = cli(
        "app", "deploy", unique("hello-oci"), "--type", "OCI", "--multiaddr", "hello:1",
        "--file", str(archive), "--mrenclave", "0xabcd", "--json", wallet="app_owner",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    document = json.loads(deployed.stdout)
    assert document["checksum"] == "0x" + _first_image_id(archive).removeprefix("sha256:")
    assert (document["type"], document["mrenclave"], document["tee"]) == ("OCI", "0xabcd", True)


def test_an_app_needs_exactly_one_checksum_source(cli: Cli, tmp_path: Path) -> None:
    refused = cli(
        "app", "deploy", "x", "--type", "WASM", "--multiaddr", "ipfs://x", wallet="app_owner"
    )
    assert refused.exit_code == 1
    assert "exactly one of a checksum and a file" in refused.stderr
    not_an_archive = tmp_path / "plain.tar"
    not_an_archive.write_bytes(b"not a tar")
    refused = cli(
        "app", "deploy", "x", "--type", "OCI", "--multiaddr", "x",
        "--file", str(not_an_archive), wallet="app_owner",
    )  # fmt: skip
    assert refused.exit_code == 1 and "not a docker-archive" in refused.stderr


def test_a_name_registered_twice_is_refused_with_advice(cli: Cli) -> None:
    args = ["app", "deploy", unique("twice"), "--type", "WASM", "--multiaddr", "ipfs://t"]
    args += ["--checksum", "0x" + "11" * 32]
    assert cli(*args, wallet="app_owner").exit_code == 0
    again = cli(*args, wallet="app_owner")
    assert again.exit_code == 1
    assert "app: already registered" in again.stderr
    assert "choose another name" in again.stderr


def test_unknown_and_malformed_apps_are_named(cli: Cli) -> None:
    unknown = cli("app", "show", "0x" + "42" * 20)
    assert unknown.exit_code == 1
    assert "no app at 0x4242" in unknown.stderr
    malformed = cli("app", "show", "0x1234")
    assert malformed.exit_code == 1
    assert "'0x1234' is not a valid app address" in malformed.stderr


def test_a_dataset_is_registered_and_shown(cli: Cli, local: LocalMarket, tmp_path: Path) -> None:
    data = tmp_path / "mnist.bin"
    data.write_bytes(secrets.token_bytes(100))
    deployed = cli(
        "dataset", "deploy", unique("mnist"), "--multiaddr", "https://data/mnist.bin",
        "--file", str(data), "--json", wallet="dataset_owner",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    document = json.loads(deployed.stdout)
    assert set(document) == DATASET_FIELDS
    assert document["checksum"] == "0x" + hashlib.sha256(data.read_bytes()).hexdigest()
    assert document["owner"] == local["dataset_owner"].address
    assert json.loads(cli("dataset", "show", document["address"], "--json").stdout) == document
    unknown = cli("dataset", "show", "0x" + "42" * 20)
    assert unknown.exit_code == 1 and "no dataset at" in unknown.stderr


def test_a_workerpool_is_registered_and_its_owner_sets_the_policy(
    cli: Cli, local: LocalMarket
) -> None:
    deployed = cli("workerpool", "deploy", unique("pool"), "--json", wallet="pool_owner")
    assert deployed.exit_code == 0, deployed.output
    document = json.loads(deployed.stdout)
    assert set(document) == POOL_FIELDS
    assert document["owner"] == local["pool_owner"].address
    changed = cli(
        "workerpool", "policy", document["address"], "--worker-stake-ratio", "50", "--json",
        wallet="pool_owner",
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    policy = json.loads(changed.stdout)
    assert policy["worker_stake_ratio"] == 50
    assert policy["scheduler_reward_ratio"] == document["scheduler_reward_ratio"]
    shown = cli("workerpool", "show", document["address"], "--json")
    assert json.loads(shown.stdout) == policy


def test_only_the_owner_sets_a_policy_and_only_within_bounds(cli: Cli, local: LocalMarket) -> None:
    stranger = cli(
        "workerpool", "policy", local.workerpool, "--worker-stake-ratio", "1", wallet="stranger"
    )
    assert stranger.exit_code == 1
    assert f"is owned by {local['pool_owner'].address}" in stranger.stderr
    assert "use the owner's wallet" in stranger.stderr
    too_high = cli(
        "workerpool", "policy", local.workerpool, "--scheduler-reward-ratio", "91",
        wallet="pool_owner",
    )  # fmt: skip
    assert too_high.exit_code == 1
    assert "scheduler reward ratio above 90" in too_high.stderr
