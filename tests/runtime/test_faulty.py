"""FaultyRuntime: a worker that runs the app and then reports a corrupted result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from decloud.chain.registries import AppType
from decloud.protocol.digest import callback_digest, result_digest
from decloud.runtime import (
    EMPTY_LOG,
    Failure,
    FailureCause,
    RunOutcome,
    RunSpec,
    WasmRuntime,
)
from decloud.runtime.testing import FAULT_MARK, FaultyRuntime, corrupt_result

SpecFor = Callable[..., RunSpec]


class WritesFiles:
    """A runtime whose "app" writes the given files, for outputs of every shape."""

    kind = AppType.WASM

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def run(self, spec: RunSpec) -> RunOutcome:
        spec.output_dir.mkdir()
        for relative, content in self.files.items():
            path = spec.output_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        return RunOutcome(0, EMPTY_LOG, EMPTY_LOG, 0.0, digest=result_digest(spec.output_dir))


def test_the_faulty_worker_disagrees_with_the_honest_one_on_the_sample_app(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    honest = wasm_runtime.run(spec_for(AppType.WASM, mandelbrot_wasm, "16", "16"))
    faulty_spec = spec_for(AppType.WASM, mandelbrot_wasm, "16", "16")
    faulty = FaultyRuntime(wasm_runtime).run(faulty_spec)

    assert honest.succeeded and faulty.succeeded
    assert faulty.digest != honest.digest
    assert faulty.digest == result_digest(faulty_spec.output_dir)
    assert faulty.fuel_used == honest.fuel_used
    assert FaultyRuntime(wasm_runtime).kind is AppType.WASM


@pytest.mark.parametrize(
    "files",
    [
        {"result.txt": b"42\n"},
        {"result.txt": b"42\n", "computed.json": b'{"deterministic-output-path": "result.txt"}'},
        {"r/a.txt": b"a", "computed.json": b'{"deterministic-output-path": "/iexec_out/r"}'},
        {"computed.json": json.dumps({"callback-data": "0x" + "ab" * 32}).encode()},
        {},
    ],
    ids=["whole-output", "file", "directory", "callback-data", "empty-output"],
)
def test_every_shape_of_output_gets_another_digest(
    spec_for: SpecFor, files: dict[str, bytes]
) -> None:
    honest = WritesFiles(files).run(spec_for(AppType.WASM, "app.wasm"))
    faulty = FaultyRuntime(WritesFiles(files)).run(spec_for(AppType.WASM, "app.wasm"))

    assert faulty.succeeded
    assert faulty.digest != honest.digest


def test_corrupted_callback_data_is_still_hex_bytes(tmp_path: Path) -> None:
    (tmp_path / "computed.json").write_text(json.dumps({"callback-data": "0x01"}))

    corrupt_result(tmp_path)

    assert result_digest(tmp_path) == callback_digest(b"\x01" + FAULT_MARK)


def test_failures_pass_through_untouched(spec_for: SpecFor) -> None:
    failure = Failure(FailureCause.APP_EXITED, "the app exited with code 1", exit_code=1)

    class Fails:
        kind = AppType.WASM

        def run(self, spec: RunSpec) -> RunOutcome:
            return RunOutcome(1, EMPTY_LOG, EMPTY_LOG, 0.1, failure=failure)

    outcome = FaultyRuntime(Fails()).run(spec_for(AppType.WASM, "app.wasm"))

    assert outcome.failure is failure
