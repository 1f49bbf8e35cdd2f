"""The runtime's vocabulary: specs, limits, outcomes, failures, logs, checksums and the app's
environment. No app runs here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from decloud.chain.registries import AppType
from decloud.runtime import (
    CapturedLog,
    Failure,
    FailureCause,
    Limits,
    RunOutcome,
    RunSpec,
    TaskContext,
    app_environment,
    file_checksum,
    verify_checksum,
)
from decloud.runtime.capture import LogCapture

TASK_ID = bytes.fromhex("7a" * 32)
DEAL_ID = bytes.fromhex("de" * 32)


def spec(**fields: object) -> RunSpec:
    return RunSpec(AppType.WASM, "app.wasm", Path("in"), Path("out"), **fields)  # type: ignore[arg-type]


# --- specs and limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits",
    [{"fuel": 0}, {"memory_bytes": -1}, {"pids": 1.5}, {"wall_time_s": 0}, {"cpus": float("nan")}],
)
def test_limits_must_be_positive(limits: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="limits:"):
        Limits(**limits)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"checksum": b"\x01" * 31}, "checksum must be 32 bytes"),
        ({"args": ("a\0b",)}, "NUL byte"),
        ({"env": {"A=B": "1"}}, "invalid environment variable"),
        ({"env": {"": "1"}}, "invalid environment variable"),
    ],
)
def test_a_malformed_spec_is_refused(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        spec(**fields)


def test_an_outcome_has_a_digest_or_a_failure_never_both() -> None:
    empty = CapturedLog(b"", 0)
    failure = Failure(FailureCause.TIMEOUT, "too slow")

    with pytest.raises(ValueError, match="exactly one"):
        RunOutcome(0, empty, empty, 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        RunOutcome(0, empty, empty, 1.0, digest=b"\x00" * 32, failure=failure)
    assert not RunOutcome.not_started(failure).succeeded


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", list(FailureCause))
def test_every_failure_says_what_happened_and_what_to_do(cause: FailureCause) -> None:
    failure = Failure(cause, "what happened")

    assert failure.message.startswith("what happened. ")
    assert failure.message.endswith(cause.advice)
    assert cause.advice[0].isupper() and cause.advice.endswith(".")
    assert str(failure).startswith(f"{cause.value}: ")


# --- logs -------------------------------------------------------------------------------------


def test_a_log_keeps_its_head_and_counts_the_rest() -> None:
    capture = LogCapture(5)
    for chunk in (b"abc", b"defgh", b"ij"):
        capture.write(chunk)
    log = capture.result()

    assert (log.data, log.total_bytes, log.truncated) == (b"abcde", 10, True)
    assert log.render() == b"abcde\n[decloud: log truncated, 5 more bytes dropped]\n"


def test_a_log_under_its_cap_is_rendered_as_is() -> None:
    capture = LogCapture(100)
    capture.write(b"all of it\n")

    assert not capture.result().truncated
    assert capture.result().render() == b"all of it\n"


# --- checksums --------------------------------------------------------------------------------


def test_a_module_checksum_is_its_sha256(tmp_path: Path) -> None:
    module = tmp_path / "app.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")

    assert file_checksum(module) == hashlib.sha256(b"\0asm\x01\0\0\0").digest()
    assert verify_checksum(module, file_checksum(module)) is None
    assert verify_checksum(module, None) is None
    mismatch = verify_checksum(module, b"\x00" * 32)
    assert mismatch is not None and mismatch.cause is FailureCause.CHECKSUM_MISMATCH
    missing = verify_checksum(tmp_path / "gone.wasm", None)
    assert missing is not None and missing.cause is FailureCause.MODULE_MISSING


# --- the app's environment --------------------------------------------------------------------


def test_the_environment_has_the_decloud_and_the_iexec_names() -> None:
    task = TaskContext(
        deal_id=DEAL_ID,
        task_id=TASK_ID,
        task_index=5,
        bag_first_index=4,
        bag_size=3,
        dataset_address="0x" + "12" * 20,
        dataset_filename="dataset.bin",
        input_files=("a.csv", "b.csv"),
    )
    env = app_environment(task)

    assert env == {
        "DECLOUD_IN": "/iexec_in",
        "DECLOUD_OUT": "/iexec_out",
        "DECLOUD_DEAL_ID": "0x" + "de" * 32,
        "DECLOUD_TASK_ID": "0x" + "7a" * 32,
        "DECLOUD_TASK_INDEX": "5",
        "DECLOUD_BAG_FIRST_INDEX": "4",
        "DECLOUD_BAG_SIZE": "3",
        "DECLOUD_DATASET_ADDRESS": "0x" + "12" * 20,
        "DECLOUD_DATASET_FILENAME": "dataset.bin",
        "DECLOUD_INPUT_FILES_NUMBER": "2",
        "DECLOUD_INPUT_FILE_NAME_1": "a.csv",
        "DECLOUD_INPUT_FILE_NAME_2": "b.csv",
        "IEXEC_IN": "/iexec_in",
        "IEXEC_OUT": "/iexec_out",
        "IEXEC_INPUT_FILES_FOLDER": "/iexec_in",
        "IEXEC_TASK_ID": "0x" + "7a" * 32,
        "IEXEC_BOT_TASK_INDEX": "5",
        "IEXEC_BOT_FIRST_INDEX": "4",
        "IEXEC_BOT_SIZE": "3",
        "IEXEC_DATASET_ADDRESS": "0x" + "12" * 20,
        "IEXEC_DATASET_FILENAME": "dataset.bin",
        "IEXEC_INPUT_FILES_NUMBER": "2",
        "IEXEC_INPUT_FILE_NAME_1": "a.csv",
        "IEXEC_INPUT_FILE_NAME_2": "b.csv",
    }


def test_without_a_dataset_its_address_is_zero_and_its_file_unset() -> None:
    env = app_environment(TaskContext(DEAL_ID, TASK_ID, 0))

    assert env["IEXEC_DATASET_ADDRESS"] == "0x" + "00" * 20
    assert "IEXEC_DATASET_FILENAME" not in env
    assert env["IEXEC_INPUT_FILES_NUMBER"] == "0"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"task_index": 3, "bag_first_index": 0, "bag_size": 3}, "outside the bag"),
        ({"task_index": 0, "bag_size": 0}, "outside the bag"),
        ({"task_index": 0, "input_files": ("../etc/passwd",)}, "not a plain file name"),
        ({"task_index": 0, "dataset_address": "0x" + "12" * 20}, "both an address and a file"),
    ],
)
def test_a_task_context_that_would_mislead_the_app_is_refused(
    fields: dict[str, object], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        TaskContext(DEAL_ID, TASK_ID, **fields)  # type: ignore[arg-type]
