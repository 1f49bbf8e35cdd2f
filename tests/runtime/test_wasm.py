"""The WASM runtime, for real: wasmtime running the sample app, a probe app and WAT modules."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from decloud.chain.registries import AppType
from decloud.runtime import (
    FailureCause,
    Limits,
    RunOutcome,
    RunSpec,
    TaskContext,
    WasmRuntime,
    app_environment,
    file_checksum,
)
from tests.runtime.wat_apps import GROWS_UNTIL_REFUSED, INFINITE_LOOP, SLEEPS_FOR_A_DAY

SpecFor = Callable[..., RunSpec]

MIB = 1024 * 1024


def run(runtime: WasmRuntime, spec: RunSpec) -> RunOutcome:
    outcome = runtime.run(spec)
    if outcome.failure is not None:
        assert outcome.failure.cause.advice in outcome.failure.message
    return outcome


# --- the sample app ---------------------------------------------------------------------------


def test_mandelbrot_renders_its_image_as_the_deterministic_output(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    spec = spec_for(AppType.WASM, mandelbrot_wasm, "96", "64", "200")
    outcome = run(wasm_runtime, spec)

    assert outcome.succeeded, outcome.failure
    assert outcome.exit_code == 0
    image = (spec.output_dir / "mandelbrot.ppm").read_bytes()
    assert image.startswith(b"P6\n96 64\n255\n")
    assert len(image) == len(b"P6\n96 64\n255\n") + 96 * 64 * 3
    assert outcome.digest == hashlib.sha256(image).digest()
    assert b"rendered 96x64 pixels" in outcome.stdout.data
    assert outcome.fuel_used is not None and outcome.fuel_used > 0


def test_two_runs_agree_on_the_digest_and_the_fuel(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    first, second = (
        run(wasm_runtime, spec_for(AppType.WASM, mandelbrot_wasm, "64", "64", "100"))
        for _ in range(2)
    )

    assert first.digest is not None and first.digest == second.digest
    assert first.fuel_used == second.fuel_used


def test_the_zoom_changes_the_image(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    whole = run(wasm_runtime, spec_for(AppType.WASM, mandelbrot_wasm, "32", "32", "50"))
    zoomed = run(
        wasm_runtime,
        spec_for(AppType.WASM, mandelbrot_wasm, "32", "32", "50", "-0.75", "0.1", "20"),
    )

    assert whole.succeeded and zoomed.succeeded
    assert whole.digest != zoomed.digest


def test_the_registered_checksum_lets_the_module_run(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    checksum = file_checksum(mandelbrot_wasm)
    outcome = run(
        wasm_runtime, spec_for(AppType.WASM, mandelbrot_wasm, "8", "8", checksum=checksum)
    )

    assert outcome.succeeded, outcome.failure


def test_compiled_modules_are_cached_and_a_corrupt_cache_entry_is_rebuilt(
    tmp_path: Path, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    cache = tmp_path / "compiled"
    with contextlib.closing(WasmRuntime(cache)) as runtime:
        first = run(runtime, spec_for(AppType.WASM, mandelbrot_wasm, "8", "8"))
        [entry] = cache.glob("*.cwasm")
        assert entry.name == f"{file_checksum(mandelbrot_wasm).hex()}.cwasm"

        entry.write_bytes(b"not a compiled module")
        second = run(runtime, spec_for(AppType.WASM, mandelbrot_wasm, "8", "8"))

    assert first.digest == second.digest
    assert entry.read_bytes() != b"not a compiled module"


# --- what the app sees ------------------------------------------------------------------------


def test_the_app_sees_its_args_env_and_a_read_only_input(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, probe_wasm: Path
) -> None:
    task = TaskContext(deal_id=b"\x01" * 32, task_id=b"\x02" * 32, task_index=0)
    spec = spec_for(AppType.WASM, probe_wasm, "report", env=app_environment(task))
    outcome = run(wasm_runtime, spec)

    assert outcome.succeeded, outcome.failure
    report = (spec.output_dir / "report.txt").read_text().splitlines()
    assert "argv[0]=app" in report
    assert "argv[1]=report" in report
    assert "IEXEC_IN=/iexec_in" in report
    assert "IEXEC_OUT=/iexec_out" in report
    assert f"IEXEC_TASK_ID=0x{'02' * 32}" in report
    assert f"DECLOUD_TASK_ID=0x{'02' * 32}" in report
    assert "HOME=(unset)" in report  # nothing of the worker's environment leaks in
    assert "input writable=no" in report
    assert "input data=hello input" in report
    assert not (spec.input_dir / "written-by-app").exists()


def test_clocks_and_random_bytes_are_the_same_on_every_run_and_follow_the_seed(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, probe_wasm: Path
) -> None:
    def report(seed: bytes) -> list[str]:
        spec = spec_for(AppType.WASM, probe_wasm, "report", entropy_seed=seed)
        assert run(wasm_runtime, spec).succeeded
        lines = (spec.output_dir / "report.txt").read_text().splitlines()
        return [line for line in lines if line.startswith(("realtime=", "random="))]

    first, again, other_seed = report(b"task 1"), report(b"task 1"), report(b"task 2")

    assert first == again
    assert first[0] == other_seed[0]  # the virtual clock does not depend on the seed
    assert first[1] != other_seed[1]


def test_stdout_is_capped_with_a_visible_marker(
    tmp_path: Path, spec_for: SpecFor, probe_wasm: Path
) -> None:
    with contextlib.closing(WasmRuntime(tmp_path / "compiled", log_cap=1000)) as runtime:
        outcome = run(runtime, spec_for(AppType.WASM, probe_wasm, "spam", "100000"))

    assert outcome.succeeded, outcome.failure
    assert outcome.stdout.data == b"x" * 1000
    assert outcome.stdout.total_bytes == 100_000
    assert outcome.stdout.render().endswith(b"[decloud: log truncated, 99000 more bytes dropped]\n")


# --- every way a run can fail -----------------------------------------------------------------


def test_a_missing_module_is_reported_before_anything_runs(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, tmp_path: Path
) -> None:
    outcome = run(wasm_runtime, spec_for(AppType.WASM, tmp_path / "gone.wasm"))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.MODULE_MISSING
    assert "gone.wasm does not exist" in outcome.failure.message
    assert outcome.exit_code is None


def test_a_module_that_is_not_the_registered_one_does_not_run(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    spec = spec_for(AppType.WASM, mandelbrot_wasm, checksum=b"\x11" * 32)
    outcome = run(wasm_runtime, spec)

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.CHECKSUM_MISMATCH
    assert f"0x{file_checksum(mandelbrot_wasm).hex()}" in outcome.failure.message
    assert not spec.output_dir.exists() or not any(spec.output_dir.iterdir())


def test_an_app_that_exits_non_zero_reports_its_code_and_stderr(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    outcome = run(wasm_runtime, spec_for(AppType.WASM, mandelbrot_wasm, "not-a-number"))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.APP_EXITED
    assert outcome.failure.exit_code == outcome.exit_code == 2
    assert "exited with code 2" in outcome.failure.message
    assert b"usage:" in outcome.stderr.data


def test_an_app_out_of_fuel_is_stopped_at_exactly_its_limit(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    outcome = run(
        wasm_runtime,
        spec_for(AppType.WASM, mandelbrot_wasm, "256", "256", limits=Limits(fuel=1_000_000)),
    )

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUT_OF_FUEL
    assert outcome.fuel_used == 1_000_000
    assert "1000000 fuel" in outcome.failure.message


def test_an_app_whose_memory_hits_the_limit_is_out_of_memory(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    limits = Limits(memory_bytes=4 * MIB)
    outcome = run(
        wasm_runtime, spec_for(AppType.WASM, wat_module(GROWS_UNTIL_REFUSED), limits=limits)
    )

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUT_OF_MEMORY
    assert f"{4 * MIB} bytes of its {4 * MIB}-byte limit" in outcome.failure.message


def test_a_module_that_needs_more_memory_than_allowed_to_start_is_out_of_memory(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    module = wat_module('(module (memory (export "memory") 100) (func (export "_start")))')
    outcome = run(wasm_runtime, spec_for(AppType.WASM, module, limits=Limits(memory_bytes=MIB)))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUT_OF_MEMORY
    assert "needs 6553600 bytes of memory to start" in outcome.failure.message


def test_an_endless_loop_is_interrupted_at_its_wall_time(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    limits = Limits(fuel=10**15, wall_time_s=0.5)
    started = time.monotonic()
    outcome = run(wasm_runtime, spec_for(AppType.WASM, wat_module(INFINITE_LOOP), limits=limits))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.TIMEOUT
    assert "still running after 0.5 s" in outcome.failure.message
    assert outcome.fuel_used is None
    assert time.monotonic() - started < 5


def test_an_app_blocked_in_a_host_call_is_killed_after_its_wall_time(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    limits = Limits(wall_time_s=0.5)
    started = time.monotonic()
    outcome = run(wasm_runtime, spec_for(AppType.WASM, wat_module(SLEEPS_FOR_A_DAY), limits=limits))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.TIMEOUT
    assert time.monotonic() - started < 5


def test_a_module_that_is_not_webassembly_is_a_runtime_error(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, tmp_path: Path
) -> None:
    module = tmp_path / "garbage.wasm"
    module.write_bytes(b"\0asm garbage")
    outcome = run(wasm_runtime, spec_for(AppType.WASM, module))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.RUNTIME_ERROR
    assert "the module cannot run" in outcome.failure.message


@pytest.mark.parametrize(
    ("computed", "reason"),
    [
        ("{not json", "computed.json: not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"deterministic-output-path": "/etc/passwd"}', "is outside the output /iexec_out"),
        ('{"deterministic-output-path": "../../etc/passwd"}', "must not contain '..'"),
        ('{"deterministic-output-path": "/iexec_out/missing.txt"}', "does not exist"),
    ],
)
def test_an_output_without_a_canonical_digest_is_invalid(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, probe_wasm: Path, computed: str, reason: str
) -> None:
    outcome = run(wasm_runtime, spec_for(AppType.WASM, probe_wasm, "computed", computed))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUTPUT_INVALID
    assert reason in outcome.failure.message
    assert outcome.exit_code == 0


def test_an_output_with_a_symlink_is_invalid(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, probe_wasm: Path
) -> None:
    outcome = run(wasm_runtime, spec_for(AppType.WASM, probe_wasm, "symlink"))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUTPUT_INVALID
    assert "/iexec_out/link.txt: links are refused" in outcome.failure.message


def test_a_used_output_directory_is_refused(
    wasm_runtime: WasmRuntime, spec_for: SpecFor, mandelbrot_wasm: Path
) -> None:
    spec = spec_for(AppType.WASM, mandelbrot_wasm, "8", "8")
    spec.output_dir.mkdir()
    (spec.output_dir / "left-over.txt").write_text("from an earlier attempt")
    outcome = run(wasm_runtime, spec)

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.RUNTIME_ERROR
    assert "is not empty" in outcome.failure.message


def test_an_oci_spec_is_a_programming_error(wasm_runtime: WasmRuntime, spec_for: SpecFor) -> None:
    with pytest.raises(ValueError, match="runs WASM apps, not OCI"):
        wasm_runtime.run(spec_for(AppType.OCI, "busybox"))
