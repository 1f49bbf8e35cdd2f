"""Settings of the market service: table `[market]` of the config file, `DECLOUD_MARKET_*`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from decloud.service.settings import ServiceSettings

DEFAULT_PORT = 8700


class MarketSettings(ServiceSettings):
    database_url: str = Field(
        default="sqlite:///decloud-market.db",
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql://user@host/db",
    )
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    rpc_url: str = Field(default="http://127.0.0.1:8545", description="JSON-RPC node of the chain")
    deployment: Path = Field(
        default=Path("deployment.json"), description="Deployment file written by the deployer"
    )
    max_open_orders_per_owner: int = Field(default=1_000, gt=0)
    sync_interval_s: float = Field(default=1.0, gt=0, description="Seconds between chain polls")
    confirmations: int = Field(default=0, ge=0, description="Blocks the sync stays behind the head")
    start_block: int = Field(default=0, ge=0, description="Block the sync starts from, first time")
