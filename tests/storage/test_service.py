"""The store as a service: `decloud storage run` from a config file, its migrated schema, its
OpenAPI operations fuzzed, and `decloud storage cid`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from sqlalchemy import inspect
from typer.testing import CliRunner

from decloud.chain.localnet import LocalMarket
from decloud.service.db import Database
from decloud.storage.cli import app as storage_cli
from decloud.storage.migrations import migrate_storage
from decloud.storage.models import StorageBase
from decloud.storage.service import build_app
from tests.service.postgres import database_url, postgres
from tests.storage.conftest import SMALL_LIMIT, store_settings

__all__ = ["database_url", "postgres"]  # fixtures shared with tests/service


def test_migrations_give_exactly_the_models_schema(database_url: str) -> None:
    database = Database(database_url)
    try:
        migrate_storage(database)
        inspector = inspect(database.engine)
        for table in StorageBase.metadata.sorted_tables:
            columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name: c.nullable for c in table.columns}, table.name
            indexes = {i["name"] for i in inspector.get_indexes(table.name)}
            assert {i.name for i in table.indexes} <= indexes, table.name
    finally:
        database.dispose()


def test_no_request_makes_the_store_fail(local: LocalMarket, tmp_path: Path) -> None:
    """Schemathesis fuzzes every operation (a bounded run): no answer is a 5xx."""
    schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
    app = build_app(store_settings(tmp_path, local, SMALL_LIMIT))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for operation in schema.get_all_operations():
        _fuzz(operation.ok().as_strategy())


def _fuzz(cases: st.SearchStrategy[schemathesis.Case]) -> None:
    @given(case=cases)
    @settings(
        max_examples=25, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def no_server_error(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    no_server_error()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_storage_run_serves_what_its_config_file_says(local: LocalMarket, tmp_path: Path) -> None:
    """`decloud storage run` in its own process, configured by a file and the environment,
    stopped by its PID."""
    port = _free_port()
    local.deployment.save(tmp_path / "deployment.json")
    (tmp_path / "decloud.toml").write_text(
        f'[storage]\nport = {port}\nroot = "{tmp_path / "results"}"\n'
        f'deployment = "{tmp_path / "deployment.json"}"\nmax_body_bytes = 12345\n'
    )
    env = os.environ | {
        "DECLOUD_CONFIG": str(tmp_path / "decloud.toml"),
        "DECLOUD_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'index.db'}",
        "DECLOUD_STORAGE_RPC_URL": local.rpc_url,
    }
    command = [sys.executable, "-c", "from decloud.storage.cli import app; app()", "run"]
    with (tmp_path / "storage.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        info = _wait_for_info(f"http://127.0.0.1:{port}", process, tmp_path / "storage.log")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert info == {
        "service": "storage",
        "chain_id": local.deployment.chain_id,
        "hub": local.deployment.hub,
        "max_archive_bytes": 12345,
    }
    assert (tmp_path / "results" / "objects").is_dir()


def _wait_for_info(url: str, process: subprocess.Popen[bytes], log: Path) -> object:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the store exited: {log.read_text()}")
        try:
            return httpx.get(url + "/info", timeout=1).raise_for_status().json()
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the store did not answer: {log.read_text()}")


def test_the_cid_command_prints_what_ipfs_add_would(tmp_path: Path) -> None:
    (tmp_path / "hello").write_bytes(b"hello\n")
    result = CliRunner().invoke(storage_cli, ["cid", str(tmp_path / "hello")])
    assert result.output == "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN\n"
    result = CliRunner().invoke(storage_cli, ["cid", "--json", str(tmp_path / "hello")])
    assert '"size": 6' in result.output
