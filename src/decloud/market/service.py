"""`decloud market run`: migrate the database, follow the chain, serve the API."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from decloud.chain.deploy import Deployment
from decloud.market.api import create_app
from decloud.market.chain import MarketChain
from decloud.market.migrations import MARKET_MIGRATIONS
from decloud.market.settings import MarketSettings
from decloud.service.db import Database
from decloud.service.logs import LogLevel, uvicorn_options
from decloud.service.migrations import migrate
from decloud.service.tables import SERVICE_MIGRATIONS


class MarketConfigError(RuntimeError):
    """The market cannot start with these settings."""


def migrate_market(database: Database) -> None:
    """Bring the shared tables and the market's to the schema of this code."""
    migrate(database.engine, "service", SERVICE_MIGRATIONS)
    migrate(database.engine, "market", MARKET_MIGRATIONS)


def build_app(settings: MarketSettings, *, run_sync: bool = True) -> FastAPI:
    """The market app for these settings, its database migrated, its chain checked."""
    if not settings.deployment.exists():
        raise MarketConfigError(
            f"deployment file {settings.deployment} not found: deploy the protocol first, "
            "or set [market] deployment (DECLOUD_MARKET_DEPLOYMENT)"
        )
    chain = MarketChain(settings.rpc_url, Deployment.load(settings.deployment))
    node_chain_id = chain.w3.eth.chain_id
    if node_chain_id != chain.deployment.chain_id:
        raise MarketConfigError(
            f"the node of [market] rpc_url serves chain {node_chain_id}, but the deployment "
            f"{settings.deployment} is on chain {chain.deployment.chain_id}"
        )
    database = Database(settings.database_url)
    migrate_market(database)
    return create_app(settings, database, chain, run_sync=run_sync)


def run(settings: MarketSettings, level: LogLevel = LogLevel.INFO) -> None:
    """Serve until interrupted, logging through the root logger (decloud.service.logs)."""
    uvicorn.run(
        build_app(settings), host=settings.host, port=settings.port, **uvicorn_options(level)
    )
