"""Settings of a worker: table `[worker]` of the config file, `DECLOUD_WORKER_*` variables.

The same file as the services' (`DECLOUD_CONFIG`), read the same way: defaults, then the
file's table, then the environment; unknown keys are refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from decloud.service.settings import CONFIG_FILE_VARIABLE, SettingsError
from decloud.service.types import AddressStr

SECTION = "worker"
ENV_PREFIX = "DECLOUD_WORKER_"


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: Path = Field(description="File holding the worker's private key (hex)")
    scheduler_url: str = Field(default="http://127.0.0.1:8701", description="The pool's scheduler")
    storage_url: str = Field(default="http://127.0.0.1:8702", description="The result store")
    rpc_url: str = Field(default="http://127.0.0.1:8545", description="JSON-RPC node of the chain")
    deployment: Path = Field(
        default=Path("deployment.json"), description="Deployment file written by the deployer"
    )
    workerpool: AddressStr | None = Field(
        default=None, description="Join only this pool (default: the scheduler's)"
    )
    state_dir: Path = Field(
        default=Path("decloud-worker"),
        description="Replicate records (resumed after a restart) and work directories",
    )
    cache_dir: Path | None = Field(
        default=None, description="Downloaded apps and datasets by sha256 (default: STATE/cache)"
    )
    docker_url: str | None = Field(
        default=None,
        description="Docker Engine API of the container engine (unix:///path or tcp://host:"
        "port); OCI apps run only when it is set",
    )
    slots: int = Field(default=1, ge=1, le=256, description="Replicates computed at once")
    cores: int | None = Field(default=None, ge=1, description="Announced (default: the CPU's)")
    memory_mb: int | None = Field(default=None, ge=1, description="Announced (default: RAM)")
    fuel: int = Field(default=10**11, gt=0, description="Fuel of a WASM run")
    app_memory_mb: int = Field(default=512, gt=0, description="Memory of one run")
    app_cpus: float = Field(default=1.0, gt=0, description="CPUs of one container run")
    max_download_bytes: int = Field(default=4 * 1024**3, gt=0, description="Per file fetched")
    pull_interval_s: float = Field(default=1.0, gt=0, description="Asking for work, when idle")
    chain_poll_s: float = Field(default=0.5, gt=0, description="Watching a vote's task")
    result_report_wait_s: float = Field(
        default=60.0, ge=0, description="Offering the result link until the scheduler takes it"
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="Of each HTTP request")
    drain_timeout_s: float = Field(
        default=600.0, ge=0, description="After SIGTERM, how long replicates may take to end"
    )
    keep_finished_s: float = Field(
        default=7 * 24 * 3600.0, ge=0, description="How long finished records are kept"
    )

    @property
    def cache(self) -> Path:
        return self.cache_dir or self.state_dir / "cache"


def load_worker_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> WorkerSettings:
    """Defaults, then table `[worker]` of the file (`config_file`, else `DECLOUD_CONFIG`'s),
    then `DECLOUD_WORKER_<FIELD>` variables."""
    environ = os.environ if environ is None else environ
    path = config_file or (
        Path(environ[CONFIG_FILE_VARIABLE]) if environ.get(CONFIG_FILE_VARIABLE) else None
    )
    values: dict[str, object] = dict(_table(path)) if path else {}
    for name in WorkerSettings.model_fields:
        if ENV_PREFIX + name.upper() in environ:
            values[name] = environ[ENV_PREFIX + name.upper()]
    try:
        return WorkerSettings.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(
            f"[{SECTION}] settings (file {path or 'none'}, variables {ENV_PREFIX}*): {problems}"
        ) from error


def _table(path: Path) -> Mapping[str, object]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"config file {path}: {error}") from error
    table = document.get(SECTION, {})
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [{SECTION}] must be a table")
    return table
