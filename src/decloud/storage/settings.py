"""Settings of the result store: table `[storage]` of the config file, `DECLOUD_STORAGE_*`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from decloud.service.settings import ServiceSettings

DEFAULT_PORT = 8702
DEFAULT_MAX_ARCHIVE_BYTES = 4 * 1024**3


class StorageSettings(ServiceSettings):
    database_url: str = Field(
        default="sqlite:///decloud-storage.db",
        description="SQLAlchemy URL of the index (which task has which archive) and of the "
        "used request nonces: sqlite:///path (default) or postgresql://user@host/db",
    )
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_ARCHIVE_BYTES,
        gt=0,
        description="Largest result archive accepted, in bytes; larger uploads get 413",
    )
    root: Path = Field(
        default=Path("decloud-results"),
        description="Directory of the filesystem backend: archives by CID, and staging",
    )
    rpc_url: str = Field(default="http://127.0.0.1:8545", description="JSON-RPC node of the chain")
    deployment: Path = Field(
        default=Path("deployment.json"), description="Deployment file written by the deployer"
    )
    start_block: int = Field(
        default=0, ge=0, description="Block of the hub's deployment: reveals are searched from it"
    )
