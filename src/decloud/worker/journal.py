"""The worker's local state: one JSON file per replicate, written atomically.

    STATE_DIR/replicates/<taskid>.json   replicates in progress: resumed after a restart
    STATE_DIR/finished/<taskid>.json     replicates that reached a final state, kept for
                                         inspection and pruned after `keep_finished_s`

A record is written to a temporary file in the same directory, flushed to disk, then renamed
over the old one, and the directory is synced: a worker killed at any moment leaves either
the previous record or the new one, never half of one. That is what makes a vote persisted
before it is sent safe to resume (see `decloud.worker.state`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from decloud.runtime.spec import FailureCause
from decloud.scheduler.schemas import WorkAssignment
from decloud.scheduler.state import WorkerCause
from decloud.worker.state import STATES, Cause, ReplicateRecord, ReplicateState, StoryEntry

FORMAT_VERSION = 1


class JournalError(RuntimeError):
    """A record cannot be read: the worker must not guess what it already did."""


class Journal:
    """The records of one worker, under `root`."""

    def __init__(self, root: Path) -> None:
        self.active_dir = root / "replicates"
        self.finished_dir = root / "finished"
        for directory in (self.active_dir, self.finished_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def save(self, record: ReplicateRecord) -> None:
        _write_atomically(self._path(self.active_dir, record.taskid), encode(record))

    def finish(self, record: ReplicateRecord) -> None:
        """Move a record in a final state out of the way of the next start."""
        _write_atomically(self._path(self.finished_dir, record.taskid), encode(record))
        self._path(self.active_dir, record.taskid).unlink(missing_ok=True)
        _sync_directory(self.active_dir)

    def active(self) -> list[ReplicateRecord]:
        """The replicates to resume, oldest first."""
        records = [_read(path) for path in self.active_dir.glob("0x*.json")]
        return sorted(records, key=lambda record: record.story[0].at if record.story else 0.0)

    def finished(self, taskid: bytes) -> ReplicateRecord | None:
        path = self._path(self.finished_dir, taskid)
        return _read(path) if path.exists() else None

    def knows(self, taskid: bytes) -> bool:
        """Whether this worker ever held a replicate of the task (a task gives a worker at
        most one)."""
        return any(self._path(d, taskid).exists() for d in (self.active_dir, self.finished_dir))

    def prune(self, now: float, keep_s: float) -> int:
        """Remove finished records older than `keep_s`; how many went."""
        removed = 0
        for path in self.finished_dir.glob("0x*.json"):
            if path.stat().st_mtime < now - keep_s:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    @staticmethod
    def _path(directory: Path, taskid: bytes) -> Path:
        return directory / f"0x{taskid.hex()}.json"


def encode(record: ReplicateRecord) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "assignment": record.assignment.model_dump(mode="json"),
        "state": record.state,
        "app": record.app,
        "dataset_filename": record.dataset_filename,
        "input_files": list(record.input_files),
        "digest": _hex(record.digest),
        "callback_data": "0x" + record.callback_data.hex(),
        "contribute_tx": record.contribute_tx,
        "reveal_tx": record.reveal_tx,
        "link": record.link,
        "cause": None if record.cause is None else str(record.cause),
        "message": record.message,
        "story": [[entry.at, entry.event, entry.change] for entry in record.story],
    }


def decode(document: dict[str, Any]) -> ReplicateRecord:
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown record format {document.get('version')!r}")
    return ReplicateRecord(
        assignment=WorkAssignment.model_validate(document["assignment"]),
        state=_state(document["state"]),
        app=document["app"],
        dataset_filename=document["dataset_filename"],
        input_files=tuple(document["input_files"]),
        digest=None if document["digest"] is None else bytes.fromhex(document["digest"][2:]),
        callback_data=bytes.fromhex(document["callback_data"][2:]),
        contribute_tx=document["contribute_tx"],
        reveal_tx=document["reveal_tx"],
        link=document["link"],
        cause=None if document["cause"] is None else parse_cause(document["cause"]),
        message=document["message"],
        story=[
            StoryEntry(float(at), str(what), str(change)) for at, what, change in document["story"]
        ],
    )


def parse_cause(value: str) -> Cause:
    """A cause a worker reports: the runtime's or the worker's own."""
    try:
        return FailureCause(value)
    except ValueError:
        return WorkerCause(value)


def _state(value: str) -> ReplicateState:
    for state in STATES:
        if state == value:
            return state
    raise ValueError(f"unknown state {value!r}")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def _read(path: Path) -> ReplicateRecord:
    try:
        return decode(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise JournalError(
            f"the replicate record {path} cannot be read ({error}); move it away only once "
            "you know whether the worker voted on that task"
        ) from error


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
