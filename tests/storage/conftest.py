"""Fixtures: one anvil with a deployed protocol and its parties, tasks played up to a reveal,
and the result store served by uvicorn on loopback, in a thread of the test process."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from decloud.chain import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.protocol.digest import result_digest
from decloud.service.auth import RequestAuth, sign_request
from decloud.storage.client import StorageClient
from decloud.storage.schemas import SERVICE_NAME, UPLOAD, UploadHeaders, UploadRequest
from decloud.storage.service import build_app
from decloud.storage.settings import StorageSettings

PARTIES = ["requester", "app_owner", "pool_owner", "worker1", "worker2", "worker3", "stranger"]
SMALL_LIMIT = 1 << 20
"""The archive size limit of the shared server: tests of the limit need not send much."""


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def local(anvil: Anvil) -> LocalMarket:
    return LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)


@dataclass
class RevealedTask:
    """A task whose `worker` revealed `digest`, the digest of the files in `output`."""

    taskid: bytes
    worker: str
    output: Path
    digest: bytes

    @property
    def hex(self) -> str:
        return "0x" + self.taskid.hex()


def write_output(directory: Path, content: bytes | None = None) -> Path:
    """An output directory with a result file (random content unless given)."""
    directory.mkdir(parents=True)
    (directory / "result.txt").write_bytes(content or secrets.token_hex(16).encode())
    (directory / "images").mkdir()
    (directory / "images" / "frame-1.ppm").write_bytes(b"P6 1 1 255\n\x00\x00\x00")
    return directory


def replicated_task(local: LocalMarket, output: Path, *, revealed: bool = True) -> RevealedTask:
    """A trust-3 task: worker1 and worker2 agree on `output`'s digest; worker1 reveals
    (unless `revealed` is False), worker2 does not."""
    digest = result_digest(output)
    deal = local.match(trust=3)
    index = deal.deal.bot_first
    for worker in ("worker1", "worker2"):
        local.contribute(deal, index, worker, digest)
    if revealed:
        local.reveal(deal, index, "worker1", digest)
    return RevealedTask(deal.task_id(index), "worker1", output, digest)


def trust1_task(local: LocalMarket, output: Path, worker: str) -> RevealedTask:
    """A trust-1 task `worker` completed in one transaction (contributeAndFinalize)."""
    digest = result_digest(output)
    deal = local.match(trust=1)
    local.contribute_and_finalize(deal, deal.deal.bot_first, worker, digest)
    return RevealedTask(deal.task_id(deal.deal.bot_first), worker, output, digest)


@dataclass
class ServedStore:
    """A running result store: its URL, where it keeps archives, and the chain it reads."""

    url: str
    root: Path
    local: LocalMarket

    def client(self) -> StorageClient:
        return StorageClient(self.url, timeout_s=120)

    def key(self, party: str) -> bytes:
        return self.local[party].key

    def headers(
        self, taskid: str, cid: str, *, signer: str, key: str | None = None, lifetime_s: int = 300
    ) -> dict[str, str]:
        """Upload headers naming `signer`, signed with `key` (the signer's own by default)."""
        auth: RequestAuth = sign_request(
            UploadRequest(taskid=taskid, cid=cid),
            service=SERVICE_NAME,
            action=UPLOAD,
            domain=self.local[signer].hub.domain,
            private_key=self.key(key or signer),
            signer=self.local[signer].address,
            lifetime_s=lifetime_s,
        )
        return UploadHeaders.of(cid, auth).as_http()

    def stored_files(self) -> list[Path]:
        """Every file the backend holds or stages."""
        return [path for path in (self.root / "results").rglob("*") if path.is_file()]


def store_settings(directory: Path, local: LocalMarket, max_archive_bytes: int) -> StorageSettings:
    local.deployment.save(directory / "deployment.json")
    return StorageSettings(
        database_url=f"sqlite:///{directory / 'index.db'}",
        port=0,
        root=directory / "results",
        rpc_url=local.rpc_url,
        deployment=directory / "deployment.json",
        max_body_bytes=max_archive_bytes,
    )


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and a port the OS picks, in a thread; its URL. The server
    is asked to stop on exit and the thread joined (bounded)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="storage-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the result store did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def store(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStore]:
    directory = tmp_path_factory.mktemp("store")
    with serving(build_app(store_settings(directory, local, SMALL_LIMIT))) as url:
        yield ServedStore(url, directory, local)
