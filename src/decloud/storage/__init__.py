"""The result store: result archives under IPFS-compatible CIDs, uploaded only by a task's
proven worker and only if their digest is the one it revealed on-chain (DESIGN.md section 3).

`StorageClient` is the SDK workers and requesters use; `decloud storage run` serves it.
"""

from decloud.storage.archive import ArchiveError, ArchiveId, build_archive, extract_archive
from decloud.storage.cid import InvalidCid, UnixfsFileHasher, file_cid, normalize_cid
from decloud.storage.client import CorruptResult, DownloadedResult, StorageClient, StorageError
from decloud.storage.schemas import TaskResult
from decloud.storage.settings import StorageSettings

__all__ = [
    "ArchiveError",
    "ArchiveId",
    "CorruptResult",
    "DownloadedResult",
    "InvalidCid",
    "StorageClient",
    "StorageError",
    "StorageSettings",
    "TaskResult",
    "UnixfsFileHasher",
    "build_archive",
    "extract_archive",
    "file_cid",
    "normalize_cid",
]
