"""The result store's index: the archives it holds, and which archive is each task's result.

The archives themselves live in the backend, by CID; the index keeps what answers need
without reading them (size, sha256, result digest) and the one fact content addressing
cannot: which task, and which worker, an archive is the result of.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Dialect, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

CID_LENGTH = 100
"""Room for any CID string the store accepts (a CIDv0 has 46 characters)."""


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC and read back as UTC: SQLite drops the timezone of what it
    stores, and answers must not depend on the database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StorageBase(DeclarativeBase):
    """Declarative base of the result store's tables."""


class ArchiveRow(StorageBase):
    """An archive held by the backend, with what its download headers announce."""

    __tablename__ = "storage_archives"

    cid: Mapped[str] = mapped_column(String(CID_LENGTH), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), doc="hex, of the archive's bytes")
    result_digest: Mapped[str] = mapped_column(String(66), doc="0x-hex, of its extracted tree")
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TaskResultRow(StorageBase):
    """The archive a task's proven worker uploaded: set once, by the first upload."""

    __tablename__ = "storage_task_results"

    taskid: Mapped[str] = mapped_column(String(66), primary_key=True, doc="0x-hex")
    cid: Mapped[str] = mapped_column(
        String(CID_LENGTH), ForeignKey("storage_archives.cid"), index=True
    )
    worker: Mapped[str] = mapped_column(String(42), doc="checksummed address")
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime)
