"""Settings of the scheduler: table `[scheduler]` of the config file, `DECLOUD_SCHEDULER_*`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from decloud.scheduler.policy import Policy
from decloud.service.settings import ServiceSettings
from decloud.service.types import AddressStr

DEFAULT_PORT = 8701


class SchedulerSettings(ServiceSettings):
    database_url: str = Field(
        default="sqlite:///decloud-scheduler.db",
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql://user@host/db",
    )
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    max_body_bytes: int = Field(
        default=512 * 1024, gt=0, description="Larger request bodies (logs) are refused"
    )
    rpc_url: str = Field(default="http://127.0.0.1:8545", description="JSON-RPC node of the chain")
    deployment: Path = Field(
        default=Path("deployment.json"), description="Deployment file written by the deployer"
    )
    workerpool: AddressStr = Field(description="The workerpool this scheduler runs")
    owner_key_file: Path = Field(
        description="File holding the workerpool owner's private key (hex): it signs "
        "authorizations and sends finalize, reopen and claim"
    )
    allowed_workers: tuple[AddressStr, ...] = Field(
        default=(), description="Workers that may log in (comma-separated); empty: any"
    )
    session_ttl_s: int = Field(default=24 * 3600, gt=0, description="Lifetime of a login")
    ping_interval_s: float = Field(default=10.0, gt=0, description="How often workers ping")
    poll_interval_s: float = Field(default=0.5, gt=0, description="Seconds between chain polls")
    confirmations: int = Field(default=0, ge=0, description="Blocks the watcher stays behind")
    start_block: int = Field(default=0, ge=0, description="Block the watcher starts from")
    max_log_bytes: int = Field(
        default=64 * 1024, gt=0, description="Kept of each of stdout and stderr per replicate"
    )
    lost_after_s: float = Field(default=30.0, gt=0, description="Silence that makes a worker lost")
    start_timeout_s: float = Field(default=60.0, gt=0, description="To start a replicate")
    progress_timeout_s: float | None = Field(
        default=None, gt=0, description="From start to contribution (default: T + 60 s)"
    )
    upload_wait_s: float = Field(default=30.0, ge=0, description="Wait for the result link")
    action_retry_s: float = Field(default=15.0, gt=0, description="Retry of refused actions")
    max_failed_replicates: int = Field(default=3, gt=0, description="Failures before giving up")
    assign_cutoff_s: int = Field(
        default=60,
        ge=0,
        description="No replicate starts this close to the contribution deadline (7T): lower "
        "it for categories whose 7T is not well above it, or their tasks never start",
    )
    final_margin_s: int = Field(
        default=60, ge=0, description="This close to the final deadline, finalize at once"
    )

    @field_validator("allowed_workers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        """An environment variable gives the list as one comma-separated string."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def policy(self) -> Policy:
        return Policy(
            lost_after_s=self.lost_after_s,
            start_timeout_s=self.start_timeout_s,
            progress_timeout_s=self.progress_timeout_s,
            upload_wait_s=self.upload_wait_s,
            action_retry_s=self.action_retry_s,
            max_failed_replicates=self.max_failed_replicates,
            assign_cutoff_s=self.assign_cutoff_s,
            final_margin_s=self.final_margin_s,
        )
