"""The result store's HTTP API: upload a task's result, find it, download it.

Archives stream both ways in READ_SIZE pieces: an upload is hashed while it is written to
the staging directory, a download is read from the backend piece by piece, so memory does
not grow with the archive. Handlers stay thin: the rules are `store`'s; blocking work (disk,
database, chain) runs in the thread pool.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from decloud.service.problems import ProblemError, install_problem_handlers, problem_responses
from decloud.storage.archive import (
    ARCHIVE_MEDIA_TYPE,
    ArchiveHasher,
    ArchiveId,
    HashingWriter,
)
from decloud.storage.cid import READ_SIZE
from decloud.storage.models import ArchiveRow
from decloud.storage.schemas import (
    IPFS_PATH_HEADER,
    REPR_DIGEST_HEADER,
    RESULT_DIGEST_HEADER,
    StorageInfo,
    TaskResult,
    UploadHeaders,
)
from decloud.storage.store import ResultStore


def _store(request: Request) -> ResultStore:
    return cast(ResultStore, request.app.state.store)


router = APIRouter()
StoreDep = Annotated[ResultStore, Depends(_store)]
TaskIdPath = Annotated[
    str, PathParameter(pattern=r"^0x[0-9a-fA-F]{64}$", description="The task id, 0x-hex")
]
CidPath = Annotated[str, PathParameter(max_length=100, description="CID of the archive (v0 or v1)")]
ARCHIVE_CONTENT = {ARCHIVE_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}


def create_app(store: ResultStore) -> FastAPI:
    """The result store's ASGI app; bodies over the store's archive limit get 413."""
    app = FastAPI(
        title="decloud result store",
        version="1",
        description="Result archives by IPFS CID, uploaded only by the task's proven worker.",
    )
    app.state.store = store
    install_problem_handlers(app, max_body_bytes=store.max_archive_bytes)
    app.include_router(router)
    return app


@router.get("/info")
def info(store: StoreDep) -> StorageInfo:
    """The chain and hub that upload requests are signed for, and the size limit."""
    return StorageInfo(
        chain_id=store.chain.domain.chain_id,
        hub=store.chain.domain.verifying_contract,
        max_archive_bytes=store.max_archive_bytes,
    )


UPLOAD_DOC: dict[str, Any] = {
    "summary": "Upload a task's result archive",
    "status_code": 201,
    "openapi_extra": {"requestBody": {"required": True, "content": ARCHIVE_CONTENT}},
    "responses": {
        200: {"description": "The same archive was already the task's result"},
        **problem_responses(400, 401, 403, 409, 413, 422, 502),
    },
}


@router.put("/results/{taskid}", **UPLOAD_DOC)
@router.post("/results/{taskid}", **UPLOAD_DOC)
async def upload(
    taskid: TaskIdPath,
    headers: Annotated[UploadHeaders, Header()],
    request: Request,
    response: Response,
    store: StoreDep,
) -> TaskResult:
    """The body is the archive (a tar), streamed; the headers carry its CID and the proven
    worker's signed request over (taskid, CID). See `decloud.storage.store` for the rules."""
    admitted = await run_in_threadpool(store.admit, taskid, headers)
    with store.staging() as staged:
        received = await _receive(request, staged)
        result, stored_now = await run_in_threadpool(store.accept, admitted, staged, received)
    if not stored_now:
        response.status_code = 200
    return result


@router.get(
    "/tasks/{taskid}/result", responses=problem_responses(404), summary="A task's stored result"
)
def task_result(taskid: TaskIdPath, store: StoreDep) -> TaskResult:
    return store.task_result(taskid)


DOWNLOAD_DOC: dict[str, Any] = {
    "summary": "Download an archive by CID",
    "response_class": StreamingResponse,
    "responses": {
        200: {"content": ARCHIVE_CONTENT, "description": "The archive, streamed"},
        **problem_responses(400, 404),
    },
}


@router.get("/results/{cid}", **DOWNLOAD_DOC)
@router.head("/results/{cid}", **DOWNLOAD_DOC)
def download(cid: CidPath, request: Request, store: StoreDep) -> Response:
    """The archive's bytes, with headers to check them: Content-Length, `Repr-Digest`
    (sha-256), `ETag` and `X-Ipfs-Path` (the CID) and `X-Decloud-Result-Digest`."""
    archive = store.archive(cid)
    headers = _archive_headers(archive)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=ARCHIVE_MEDIA_TYPE)
    return StreamingResponse(
        _pieces(store.open(archive.cid)), headers=headers, media_type=ARCHIVE_MEDIA_TYPE
    )


async def _receive(request: Request, staged: Path) -> ArchiveId:
    """Write the body to `staged` in READ_SIZE pieces, hashing it on the way."""
    hasher = ArchiveHasher()
    with staged.open("wb") as file:
        sink = HashingWriter(file, hasher)
        pending = bytearray()
        try:
            async for piece in request.stream():
                pending += piece
                if len(pending) >= READ_SIZE:
                    full, pending = pending, bytearray()
                    await run_in_threadpool(sink.write, full)
        except ClientDisconnect as error:
            # Also how the body size limit cuts an upload off; it then answers 413 itself.
            raise ProblemError(
                400, "upload.interrupted", "the upload ended before the whole archive was sent"
            ) from error
        await run_in_threadpool(sink.write, pending)
    return hasher.result()


def _archive_headers(archive: ArchiveRow) -> dict[str, str]:
    sha256 = base64.b64encode(bytes.fromhex(archive.sha256)).decode()
    return {
        "Content-Length": str(archive.size),
        "ETag": f'"{archive.cid}"',
        "Cache-Control": "public, max-age=29030400, immutable",
        "Content-Disposition": f'attachment; filename="{archive.cid}.tar"',
        IPFS_PATH_HEADER: f"/ipfs/{archive.cid}",
        REPR_DIGEST_HEADER: f"sha-256=:{sha256}:",
        RESULT_DIGEST_HEADER: archive.result_digest,
    }


def _pieces(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while piece := file.read(READ_SIZE):
            yield piece
