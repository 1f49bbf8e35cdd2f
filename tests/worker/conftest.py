"""Fixtures: one anvil with a deployed protocol and funded parties, the sample WASM app built
from source and registered (served over file:// and over HTTP on loopback), a result store,
and for each test a fresh scheduler of the local pool, all on 127.0.0.1 in this process."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from decloud.chain import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.chain.registries import AppRegistry, AppType
from decloud.scheduler.api import create_app as scheduler_app
from decloud.scheduler.service import build_scheduler
from decloud.storage.service import build_app as storage_app
from tests.worker.pool import (
    PARTIES,
    Apps,
    Pool,
    WorkerFactory,
    build,
    scheduler_settings,
    serving,
    store_settings,
)

MANDELBROT_BUILD = Path(__file__).resolve().parents[2] / "examples" / "mandelbrot-wasm" / "build.sh"


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def local(anvil: Anvil) -> LocalMarket:
    """The parties, funded; and a `pauper`, a worker with gas but nothing deposited."""
    market = LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)
    pauper_key = anvil.private_keys[len(PARTIES) + 1]
    market.add_party("pauper", bytes.fromhex(pauper_key.removeprefix("0x")))
    return market


@pytest.fixture(scope="session")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample app, built by its own recipe, in a directory served over HTTP."""
    directory = tmp_path_factory.mktemp("apps")
    build([str(MANDELBROT_BUILD), str(directory / "mandelbrot.wasm")])
    return directory


@pytest.fixture(scope="session")
def module_server(module_dir: Path) -> Iterator[str]:
    """A tiny HTTP server of the module directory; its base URL."""
    handler = functools.partial(QuietHandler, directory=str(module_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="module-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Silent: the test output is no place for access logs."""


@pytest.fixture(scope="session")
def apps(local: LocalMarket, module_dir: Path, module_server: str) -> Apps:
    """The sample app registered three times: by file://, by HTTP, and with a checksum that
    is not its module's."""
    module = module_dir / "mandelbrot.wasm"
    checksum = hashlib.sha256(module.read_bytes()).digest()
    registry = AppRegistry(local["app_owner"].hub.client, local.deployment.app_registry)

    def register(name: str, multiaddr: str, registered: bytes) -> str:
        return registry.create_app(name, AppType.WASM, multiaddr, registered)

    return Apps(
        by_file=register("mandelbrot-file", module.as_uri(), checksum),
        by_http=register("mandelbrot-http", f"{module_server}/mandelbrot.wasm", checksum),
        tampered=register("mandelbrot-tampered", module.as_uri(), hashlib.sha256(b"x").digest()),
    )


@pytest.fixture(scope="session")
def store_url(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("store")
    with serving(storage_app(store_settings(directory, local)), "store") as url:
        yield url


@pytest.fixture
def pool(
    local: LocalMarket, tmp_path: Path, store_url: str, request: pytest.FixtureRequest
) -> Iterator[Pool]:
    """A scheduler of the local pool that starts at the chain's head (so it sees only this
    test's deals), served with its loop running; an indirect parameter changes its
    settings."""
    changes = getattr(request, "param", {})
    scheduler = build_scheduler(scheduler_settings(local, tmp_path / "scheduler", **changes))
    try:
        with serving(scheduler_app(scheduler), "scheduler") as url:
            yield Pool(local, url, store_url, scheduler)
    finally:
        scheduler.database.dispose()


@pytest.fixture
def workers(pool: Pool, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(pool, tmp_path / "workers")
    try:
        yield factory
    finally:
        factory.stop_all()
