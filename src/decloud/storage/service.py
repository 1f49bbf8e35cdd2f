"""`decloud storage run`: check the chain, migrate the index, serve the API."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from decloud.chain.deploy import Deployment
from decloud.service.auth import RequestVerifier
from decloud.service.db import Database
from decloud.service.logs import LogLevel, uvicorn_options
from decloud.storage.api import create_app
from decloud.storage.backend import FilesystemBackend
from decloud.storage.chain import ResultChain
from decloud.storage.migrations import migrate_storage
from decloud.storage.schemas import SERVICE_NAME
from decloud.storage.settings import StorageSettings
from decloud.storage.store import ResultStore


class StorageConfigError(RuntimeError):
    """The result store cannot start with these settings."""


def build_app(settings: StorageSettings) -> FastAPI:
    """The result store for these settings: its chain checked, its index migrated."""
    if not settings.deployment.exists():
        raise StorageConfigError(
            f"deployment file {settings.deployment} not found: deploy the protocol first, "
            "or set [storage] deployment (DECLOUD_STORAGE_DEPLOYMENT)"
        )
    deployment = Deployment.load(settings.deployment)
    # Nothing of the protocol precedes its deployment: the scan starts there at the earliest.
    start_block = settings.start_block or deployment.deployed_at
    chain = ResultChain(settings.rpc_url, deployment, start_block=start_block)
    node_chain_id = chain.chain_id()
    if node_chain_id != chain.deployment.chain_id:
        raise StorageConfigError(
            f"the node of [storage] rpc_url serves chain {node_chain_id}, but the deployment "
            f"{settings.deployment} is on chain {chain.deployment.chain_id}"
        )
    database = Database(settings.database_url)
    migrate_storage(database)
    store = ResultStore(
        database=database,
        backend=FilesystemBackend(settings.root),
        chain=chain,
        verifier=RequestVerifier(SERVICE_NAME, chain.domain),
        max_archive_bytes=settings.max_body_bytes,
    )
    return create_app(store)


def run(settings: StorageSettings, level: LogLevel = LogLevel.INFO) -> None:
    """Serve until interrupted, logging through the root logger (decloud.service.logs)."""
    uvicorn.run(
        build_app(settings), host=settings.host, port=settings.port, **uvicorn_options(level)
    )
