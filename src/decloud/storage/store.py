"""The result store's rules: who may upload a task's result, which archive is accepted, and
what is served.

An upload is accepted only if, in this order (cheapest first, and all but the last two
before a byte of the archive is read):

1. its signed request is valid: signed by the account it names, in the hub's EIP-712 domain,
   not expired, its nonce never used (401 `auth.*`);
2. that account revealed a result of the task on-chain (403 `upload.not_contributor`,
   `upload.not_proven`);
3. the task has no other archive yet: the first accepted upload is the task's result for
   good (409 `upload.task_has_result`);
4. the archive received has the CID the worker signed (400 `upload.cid_mismatch`);
5. it is a plain tree whose canonical result digest is the digest the worker revealed
   (422 `archive.invalid`, 409 `upload.digest_mismatch`).

Uploading the task's archive again is harmless and answers like the first time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from eth_utils.address import to_checksum_address
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from decloud.protocol.hub import (
    CONTRIBUTION_CONTRIBUTED,
    CONTRIBUTION_PROVEN,
    CONTRIBUTION_REJECTED,
)
from decloud.service.auth import RequestVerifier
from decloud.service.db import Database
from decloud.service.problems import ProblemError
from decloud.storage.archive import ArchiveError, ArchiveId, archive_digest
from decloud.storage.backend import ArchiveBackend
from decloud.storage.chain import ResultChain
from decloud.storage.cid import InvalidCid, normalize_cid
from decloud.storage.models import ArchiveRow, TaskResultRow
from decloud.storage.schemas import UPLOAD, TaskResult, UploadHeaders, UploadRequest

_NOT_PROVEN = {
    CONTRIBUTION_CONTRIBUTED: "contributed but has not revealed: its result is not proven yet",
    CONTRIBUTION_REJECTED: "contributed a result that was rejected",
}
"""Why a contributor that revealed nothing may not upload, by contribution status."""


@dataclass(frozen=True)
class Upload:
    """An upload that passed every check made before its archive is read."""

    taskid: str
    cid: str
    worker: str
    revealed_digest: bytes


@dataclass(frozen=True)
class ResultStore:
    """The index, the backend and the chain, and the rules that tie them."""

    database: Database
    backend: ArchiveBackend
    chain: ResultChain
    verifier: RequestVerifier
    max_archive_bytes: int

    def admit(self, taskid: str, headers: UploadHeaders) -> Upload:
        """Rules 1 to 3. The nonce is spent as soon as the signature is checked, so a
        signed request serves once, even if its upload fails later: sign a new one."""
        request = UploadRequest(taskid=taskid, cid=headers.x_decloud_cid)
        with self.database.transaction() as session:
            worker = self.verifier.signer_of(session, UPLOAD, request, headers.auth())
        cid = _parse_cid(request.cid)
        revealed = self._revealed_digest(request.taskid, worker)
        with self.database.transaction() as session:
            stored = session.get(TaskResultRow, request.taskid)
            if stored is not None and stored.cid != cid:
                raise _task_has_result(request.taskid, stored.cid)
        return Upload(request.taskid, cid, worker, revealed)

    def accept(self, upload: Upload, staged: Path, received: ArchiveId) -> tuple[TaskResult, bool]:
        """Rules 4 and 5, then keep the archive and record it as the task's result; the
        result, and whether this upload stored it (False: it was stored already)."""
        if received.cid != upload.cid:
            raise ProblemError(
                400,
                "upload.cid_mismatch",
                f"the archive received has CID {received.cid}, but the signed request names "
                f"{upload.cid}: sign the CID of the archive you send",
            )
        digest = self._digest(staged)
        if digest != upload.revealed_digest:
            raise ProblemError(
                409,
                "upload.digest_mismatch",
                f"the archive's result digest is 0x{digest.hex()}, but {upload.worker} revealed "
                f"0x{upload.revealed_digest.hex()} for task {upload.taskid}: upload the output "
                "whose digest was revealed",
            )
        self.backend.store(staged, received.cid)
        row = ArchiveRow(
            cid=received.cid,
            size=received.size,
            sha256=received.sha256.hex(),
            result_digest="0x" + digest.hex(),
            stored_at=datetime.now(UTC),
        )
        try:
            return self._record(upload, row)
        except IntegrityError:  # the same task or archive, recorded concurrently: read it
            return self._record(upload, row)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh file name in the backend's staging directory, removed on exit unless
        the backend took the file."""
        staged = self.backend.staging_dir / f"upload-{secrets.token_hex(16)}"
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    def task_result(self, taskid: str) -> TaskResult:
        with self.database.transaction() as session:
            stored = session.get(TaskResultRow, taskid.lower())
            if stored is None:
                raise ProblemError(
                    404,
                    "result.not_found",
                    f"no result is stored for task {taskid}: its proven worker uploads it "
                    "after revealing",
                )
            return _task_result(stored, _archive(session, stored.cid))

    def archive(self, cid: str) -> ArchiveRow:
        """The index entry of archive `cid` (any CID spelling); 404 if not stored."""
        with self.database.transaction() as session:
            return _archive(session, _parse_cid(cid))

    def open(self, cid: str) -> BinaryIO:
        return self.backend.open(cid)

    def _revealed_digest(self, taskid: str, worker: str) -> bytes:
        """Rule 2: the digest `worker` revealed; otherwise why it may not upload."""
        digest = self.chain.revealed_digest(bytes.fromhex(taskid[2:]), worker)
        if digest is not None:
            return digest
        status = self.chain.contribution_status(bytes.fromhex(taskid[2:]), worker)
        if status == CONTRIBUTION_PROVEN:
            raise ProblemError(
                502,
                "chain.reveal_missing",
                f"the hub says {worker} proved task {taskid}, but the node returned no "
                "TaskReveal event for it: check [storage] start_block and the node's logs",
            )
        if status not in _NOT_PROVEN:
            raise ProblemError(
                403,
                "upload.not_contributor",
                f"{worker} did not contribute to task {taskid}: only the worker that proved "
                "its result on-chain may upload it",
            )
        raise ProblemError(
            403,
            "upload.not_proven",
            f"{worker} {_NOT_PROVEN[status]}; only a worker that revealed the consensus of "
            f"task {taskid} may upload its result",
        )

    def _digest(self, staged: Path) -> bytes:
        try:
            return archive_digest(staged, self.backend.staging_dir)
        except ArchiveError as error:
            raise ProblemError(
                422, "archive.invalid", f"the archive is refused: {error}"
            ) from error

    def _record(self, upload: Upload, row: ArchiveRow) -> tuple[TaskResult, bool]:
        with self.database.transaction() as session:
            archive = session.get(ArchiveRow, row.cid) or session.merge(row)
            stored = session.get(TaskResultRow, upload.taskid)
            if stored is not None:
                if stored.cid != upload.cid:
                    raise _task_has_result(upload.taskid, stored.cid)
                return _task_result(stored, archive), False
            stored = TaskResultRow(
                taskid=upload.taskid,
                cid=upload.cid,
                worker=to_checksum_address(upload.worker),
                uploaded_at=datetime.now(UTC),
            )
            session.add(stored)
            session.flush()
            return _task_result(stored, archive), True


def _parse_cid(text: str) -> str:
    try:
        return normalize_cid(text)
    except InvalidCid as error:
        raise ProblemError(400, "cid.invalid", str(error)) from error


def _archive(session: Session, cid: str) -> ArchiveRow:
    row = session.get(ArchiveRow, cid)
    if row is None:
        raise ProblemError(404, "archive.not_found", f"no archive {cid} is stored here")
    return row


def _task_has_result(taskid: str, cid: str) -> ProblemError:
    return ProblemError(
        409,
        "upload.task_has_result",
        f"task {taskid} already has its result, archive {cid}: a task's result is the first "
        "archive accepted for it",
    )


def _task_result(stored: TaskResultRow, archive: ArchiveRow) -> TaskResult:
    return TaskResult(
        taskid=stored.taskid,
        cid=archive.cid,
        url=f"/results/{archive.cid}",
        size=archive.size,
        sha256=archive.sha256,
        result_digest=archive.result_digest,
        worker=stored.worker,
        uploaded_at=stored.uploaded_at,
    )
