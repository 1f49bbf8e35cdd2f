"""Size-capped capture of an app's stdout and stderr.

An app may write without bound; the worker keeps the first `cap` bytes of each stream and
counts the rest. The stream is still read to its end, so the app never blocks on a full pipe
(it would otherwise sit there until its wall-clock limit and fail for the wrong reason).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import IO

from decloud.runtime.spec import CapturedLog

_CHUNK = 64 * 1024


class LogCapture:
    """Keeps the head of a byte stream, up to `cap` bytes."""

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError(f"log cap must be >= 0, got {cap}")
        self._cap = cap
        self._head = bytearray()
        self._total = 0

    def write(self, chunk: bytes) -> None:
        room = self._cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
        self._total += len(chunk)

    def result(self) -> CapturedLog:
        return CapturedLog(bytes(self._head), self._total)


def drain_pipe(pipe: IO[bytes], capture: LogCapture) -> threading.Thread:
    """Read `pipe` to its end in a daemon thread, into `capture`; join the thread to wait."""

    def drain() -> None:
        with pipe:
            # os.read returns what is there now; a buffered read would wait for a full chunk.
            while chunk := os.read(pipe.fileno(), _CHUNK):
                capture.write(chunk)

    return _started(drain)


def drain_frames(
    frames: Iterable[tuple[bytes | None, bytes | None]],
    stdout: LogCapture,
    stderr: LogCapture,
) -> threading.Thread:
    """Read demultiplexed (stdout, stderr) frames to their end in a daemon thread."""

    def drain() -> None:
        try:
            for out, err in frames:
                if out:
                    stdout.write(out)
                if err:
                    stderr.write(err)
        except (OSError, ValueError):
            pass  # the stream was closed under us: an engine that never ended it, given up on

    return _started(drain)


def _started(target: Callable[[], None]) -> threading.Thread:
    # Daemon: a stream that never ends must not keep the worker process alive on exit.
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
