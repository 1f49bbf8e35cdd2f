"""Test doubles for runtimes. Not for production: a worker using these lies about results.

`FaultyRuntime` plays a broken or dishonest worker: it runs the app for real, then changes
what the result digest covers, so its contribution disagrees with honest workers'. Consensus
tests use it to check that the honest majority wins and the faulty worker loses its stake.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from decloud.chain.registries import AppType
from decloud.protocol.digest import (
    APP_OUTPUT_DIR,
    CALLBACK_DATA,
    COMPUTED_JSON,
    read_computed,
)
from decloud.runtime.output import digest_output
from decloud.runtime.spec import Failure, RunOutcome, RunSpec, Runtime

FAULT_MARK = b"\n[decloud: corrupted by FaultyRuntime]\n"


def corrupt_result(output_dir: Path) -> None:
    """Change the part of a valid output that its digest covers.

    Callback data is altered in computed.json; a deterministic file gets bytes appended; a
    deterministic directory (by default the whole output) gets one more file.
    """
    computed = read_computed(output_dir)
    if computed.callback_data is not None:
        path = output_dir / COMPUTED_JSON
        document = json.loads(path.read_text())
        document[CALLBACK_DATA] = "0x" + (computed.callback_data + FAULT_MARK).hex()
        path.write_text(json.dumps(document))
        return
    target = output_dir
    if computed.deterministic_output_path is not None:
        declared = PurePosixPath(computed.deterministic_output_path)
        if declared.is_absolute():
            declared = declared.relative_to(APP_OUTPUT_DIR)
        target = output_dir / declared
    if target.is_file():
        with target.open("ab") as file:
            file.write(FAULT_MARK)
    else:
        (target / "faulty-worker.txt").write_bytes(FAULT_MARK)


class FaultyRuntime:
    """Wraps a real runtime and corrupts the output of each run that succeeds (failures are
    passed through untouched), reporting the digest of the corrupted output."""

    def __init__(self, inner: Runtime, corrupt: Callable[[Path], None] = corrupt_result) -> None:
        self._inner = inner
        self._corrupt = corrupt

    @property
    def kind(self) -> AppType:
        return self._inner.kind

    def run(self, spec: RunSpec) -> RunOutcome:
        outcome = self._inner.run(spec)
        if not outcome.succeeded:
            return outcome
        self._corrupt(spec.output_dir)
        checked = digest_output(spec)
        if isinstance(checked, Failure):
            return dataclasses.replace(outcome, digest=None, failure=checked)
        return dataclasses.replace(outcome, digest=checked)
