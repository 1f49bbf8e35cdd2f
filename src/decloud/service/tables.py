"""Tables every decloud service shares, and their migrations (component `service`).

Several services may share one PostgreSQL database; they then share these tables, and keep
apart by name: cursors are named `<service>.<stream>`, request nonces are bound to the
service they were signed for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Connection, MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from decloud.service.migrations import Migration


class ServiceBase(DeclarativeBase):
    """Declarative base of the shared tables."""


class CursorRow(ServiceBase):
    """Where one chain event stream stands (see decloud.chain.events.Cursor)."""

    __tablename__ = "chain_cursors"

    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_block: Mapped[int] = mapped_column(BigInteger)
    recent: Mapped[list[Any]] = mapped_column(JSON)


class UsedNonceRow(ServiceBase):
    """A signed request already served: its nonce cannot serve again before `expiry`, after
    which the signature itself is refused and the row can go."""

    __tablename__ = "used_request_nonces"

    signer: Mapped[str] = mapped_column(String(42), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(78), primary_key=True)
    expiry: Mapped[int] = mapped_column(BigInteger, index=True)


def _create_cursors_and_nonces(connection: Connection) -> None:
    frozen = MetaData()
    Table(
        "chain_cursors",
        frozen,
        Column("stream", String(128), primary_key=True),
        Column("next_block", BigInteger, nullable=False),
        Column("recent", JSON, nullable=False),
    )
    Table(
        "used_request_nonces",
        frozen,
        Column("signer", String(42), primary_key=True),
        Column("nonce", String(78), primary_key=True),
        Column("expiry", BigInteger, nullable=False, index=True),
    )
    frozen.create_all(connection)


SERVICE_MIGRATIONS = (
    Migration(1, "chain cursors and used request nonces", _create_cursors_and_nonces),
)
