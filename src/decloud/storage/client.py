"""The result store's SDK: a worker uploads a task's output, a requester downloads it.

Nothing is trusted that can be checked: a download is hashed while it streams and extracted
to a staging directory, then its CID must be the one asked for and its canonical result
digest the one announced (and the one given, typically the digest revealed on-chain);
otherwise nothing is kept. Memory stays constant whatever the size: archives are built,
sent and received in pieces.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
from eth_account import Account
from pydantic import BaseModel

from decloud.protocol.orders import Eip712Domain
from decloud.service.auth import sign_request
from decloud.storage.archive import (
    ARCHIVE_MEDIA_TYPE,
    ArchiveError,
    HashingReader,
    HashingWriter,
    extract_archive,
    tree_digest,
    write_archive,
)
from decloud.storage.cid import READ_SIZE, InvalidCid, UnixfsFileHasher, file_cid, normalize_cid
from decloud.storage.schemas import (
    RESULT_DIGEST_HEADER,
    SERVICE_NAME,
    UPLOAD,
    StorageInfo,
    TaskResult,
    UploadHeaders,
    UploadRequest,
)
from decloud.storage.settings import DEFAULT_PORT

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_TASK_ID = re.compile(r"0x[0-9a-fA-F]{64}")
M = TypeVar("M", bound=BaseModel)


class StorageError(Exception):
    """The store refused a request (`status` and `rule` say why), or could not be reached."""

    def __init__(self, detail: str, *, status: int | None = None, rule: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.rule = rule


class CorruptResult(StorageError):
    """What was downloaded is not what was asked for; nothing of it was kept."""


@dataclass(frozen=True)
class DownloadedResult:
    """A result extracted to `path`, its CID and digest checked."""

    path: Path
    cid: str
    result_digest: bytes


class StorageClient:
    """A client of one result store; use it as a context manager."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout_s: float = 60.0,
        domain: Eip712Domain | None = None,
    ) -> None:
        """`domain` is the hub's EIP-712 domain uploads are signed in; by default the one
        the store announces (`/info`)."""
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout_s)
        self._domain = domain

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def info(self) -> StorageInfo:
        return self._call("GET", "/info", StorageInfo)

    @property
    def domain(self) -> Eip712Domain:
        if self._domain is None:
            info = self.info()
            self._domain = Eip712Domain(chain_id=info.chain_id, verifying_contract=info.hub)
        return self._domain

    def upload(
        self,
        taskid: bytes | str,
        output_dir: Path,
        key: str | bytes,
        *,
        scratch: Path | None = None,
    ) -> TaskResult:
        """Archive `output_dir` (deterministically) and upload it as the result of `taskid`,
        signed with the proven worker's `key`. The archive is built in a temporary
        directory under `scratch` (the system's by default) and removed afterwards."""
        with tempfile.TemporaryDirectory(dir=scratch, prefix="decloud-upload-") as workdir:
            archive = Path(workdir) / "result.tar"
            cid = UnixfsFileHasher()
            with archive.open("wb") as file:
                write_archive(output_dir, HashingWriter(file, cid))
            return self._send(_taskid_hex(taskid), archive, cid.cid(), key)

    def upload_archive(self, taskid: bytes | str, archive: Path, key: str | bytes) -> TaskResult:
        """Upload an archive file as it is, as the result of `taskid`."""
        return self._send(_taskid_hex(taskid), archive, file_cid(archive), key)

    def task_result(self, taskid: bytes | str) -> TaskResult:
        return self._call("GET", f"/tasks/{_taskid_hex(taskid)}/result", TaskResult)

    def download(
        self, cid_or_taskid: str, dest: Path, *, expected_digest: bytes | None = None
    ) -> DownloadedResult:
        """Download a result (by CID, or the result of a task id) and extract it into the
        new directory `dest`, checking its CID and its result digest on the way; pass the
        digest revealed on-chain as `expected_digest` to trust the store with nothing."""
        cid = self._cid_of(cid_or_taskid)
        if dest.exists():
            raise StorageError(f"{dest} already exists: download into a new directory")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            received, announced = self._receive(cid, staging)
            digest = _verified_digest(staging, cid, received, announced, expected_digest)
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return DownloadedResult(dest, cid, digest)

    def _send(self, taskid: str, archive: Path, cid: str, key: str | bytes) -> TaskResult:
        auth = sign_request(
            UploadRequest(taskid=taskid, cid=cid),
            service=SERVICE_NAME,
            action=UPLOAD,
            domain=self.domain,
            private_key=key,
            signer=str(Account.from_key(key).address),
        )
        headers = UploadHeaders.of(cid, auth).as_http()
        headers["Content-Type"] = ARCHIVE_MEDIA_TYPE
        with archive.open("rb") as file:  # httpx streams a file, with its Content-Length
            return self._call(
                "PUT", f"/results/{taskid}", TaskResult, content=file, headers=headers
            )

    def _cid_of(self, cid_or_taskid: str) -> str:
        if _TASK_ID.fullmatch(cid_or_taskid):
            return self.task_result(cid_or_taskid).cid
        try:
            return normalize_cid(cid_or_taskid)
        except InvalidCid as error:
            raise StorageError(f"neither a task id nor a result CID: {error}") from error

    def _receive(self, cid: str, tree: Path) -> tuple[str, str]:
        """Stream archive `cid` into `tree`, hashing it; the CID of what was received, and
        the result digest the store announced for it."""
        hasher = UnixfsFileHasher()
        try:
            with self._http.stream("GET", f"/results/{cid}") as answer:
                if answer.is_error:
                    answer.read()
                    raise _refusal(answer)
                reader = HashingReader(answer.iter_bytes(READ_SIZE), hasher)
                extract_archive(reader, tree)
                reader.drain()
                announced = answer.headers.get(RESULT_DIGEST_HEADER, "")
        except httpx.TransportError as error:
            raise StorageError(f"the result store at {self.url} is unreachable: {error}") from error
        except ArchiveError as error:
            raise CorruptResult(f"archive {cid} cannot be extracted: {error}") from error
        return hasher.cid(), announced

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise StorageError(f"the result store at {self.url} is unreachable: {error}") from error
        if answer.is_error:
            raise _refusal(answer)
        return model.model_validate(answer.json())


def _verified_digest(
    tree: Path, cid: str, received: str, announced: str, expected: bytes | None
) -> bytes:
    """The result digest of the extracted `tree`, once the CID and digest checks pass."""
    if received != cid:
        raise CorruptResult(f"asked for archive {cid}, received {received}")
    try:
        digest = tree_digest(tree)
    except ArchiveError as error:
        raise CorruptResult(f"archive {cid} has no result digest: {error}") from error
    if announced.lower() != "0x" + digest.hex():
        raise CorruptResult(
            f"archive {cid} has result digest 0x{digest.hex()}, the store announced {announced!r}"
        )
    if expected is not None and digest != expected:
        raise CorruptResult(
            f"archive {cid} has result digest 0x{digest.hex()}, expected 0x{expected.hex()}"
        )
    return digest


def _taskid_hex(taskid: bytes | str) -> str:
    text = "0x" + taskid.hex() if isinstance(taskid, bytes) else taskid
    if not _TASK_ID.fullmatch(text):
        raise StorageError(f"{text!r} is not a task id (32 bytes, 0x-hex)")
    return text.lower()


def _refusal(answer: httpx.Response) -> StorageError:
    """The store's problem details as an exception, or what can be said without them."""
    try:
        problem = answer.json()
        return StorageError(
            f"{problem['detail']} [{problem['rule']}]",
            status=answer.status_code,
            rule=problem["rule"],
        )
    except (ValueError, KeyError, TypeError):
        return StorageError(
            f"the result store answered {answer.status_code}: {answer.text[:200]}",
            status=answer.status_code,
        )
