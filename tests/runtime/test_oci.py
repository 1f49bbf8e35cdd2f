"""The OCI runtime for real: containers run by Podman through the Docker Engine API."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from decloud.chain.registries import AppType
from decloud.runtime import (
    DockerRuntime,
    FailureCause,
    Limits,
    PodmanService,
    RunOutcome,
    RunSpec,
    TaskContext,
    app_environment,
    connect,
)

from .conftest import HELLO_TAG, SHELL_TAG

SpecFor = Callable[..., RunSpec]
MIB = 1024 * 1024
ESCAPING = '{"deterministic-output-path": "/iexec_in/data.txt"}'

pytestmark = pytest.mark.usefixtures("no_container_left")


def run(runtime: DockerRuntime, spec: RunSpec) -> RunOutcome:
    outcome = runtime.run(spec)
    if outcome.failure is not None:
        assert outcome.failure.cause.advice in outcome.failure.message
    return outcome


# --- the sample app, for real -----------------------------------------------------------------


def test_hello_oci_greets_and_fingerprints_its_inputs(
    docker_runtime: DockerRuntime, spec_for: SpecFor, hello_image: str
) -> None:
    task = TaskContext(b"\x01" * 32, b"\x02" * 32, 0, input_files=("data.txt",))
    spec = spec_for(AppType.OCI, HELLO_TAG, "Alice", "Bob", env=app_environment(task))
    outcome = run(docker_runtime, spec)

    assert outcome.succeeded, outcome.failure
    result = (spec.output_dir / "result.txt").read_bytes()
    fingerprint = hashlib.sha256(b"hello input\n").hexdigest()
    assert result == f"Hello, Alice Bob!\ndata.txt: 12 bytes, sha256 {fingerprint}\n".encode()
    assert outcome.digest == hashlib.sha256(result).digest()
    assert outcome.stdout.data == b"hello-oci: wrote /iexec_out/result.txt\n"
    assert outcome.exit_code == 0
    assert outcome.fuel_used is None


def test_hello_oci_gives_the_same_digest_twice(
    docker_runtime: DockerRuntime, spec_for: SpecFor, hello_image: str
) -> None:
    first, second = (run(docker_runtime, spec_for(AppType.OCI, HELLO_TAG, "x")) for _ in range(2))

    assert first.digest is not None and first.digest == second.digest


def test_the_image_id_is_a_checksum_that_lets_it_run(
    docker_runtime: DockerRuntime, spec_for: SpecFor, hello_image: str
) -> None:
    checksum = bytes.fromhex(hello_image.removeprefix("sha256:"))
    outcome = run(docker_runtime, spec_for(AppType.OCI, HELLO_TAG, checksum=checksum))

    assert outcome.succeeded, outcome.failure


def test_the_container_has_no_network_no_privilege_and_a_read_only_root(
    docker_runtime: DockerRuntime, spec_for: SpecFor, shell_image: str
) -> None:
    script = (
        "cd /iexec_out; id -u > uid; ls /sys/class/net > net;"
        " (touch /root-file 2>/dev/null && echo yes || echo no) > root-writable;"
        " (touch /iexec_in/x 2>/dev/null && echo yes || echo no) > input-writable;"
        " (echo ok > /tmp/t && cat /tmp/t) > tmp"
    )
    spec = spec_for(AppType.OCI, SHELL_TAG, script)
    outcome = run(docker_runtime, spec)

    assert outcome.succeeded, (outcome.failure, outcome.stderr)
    facts = {path.name: path.read_text().strip() for path in spec.output_dir.iterdir()}
    assert facts == {
        "uid": "65534",
        "net": "lo",
        "root-writable": "no",
        "input-writable": "no",
        "tmp": "ok",
    }


def test_logs_are_capped_with_a_visible_marker(
    podman: PodmanService, session_label: dict[str, str], spec_for: SpecFor, shell_image: str
) -> None:
    capped = DockerRuntime(connect(podman.base_url), log_cap=1000, labels=session_label)
    outcome = run(
        capped, spec_for(AppType.OCI, SHELL_TAG, "yes | head -c 100000; echo oops >&2; exit 0")
    )

    assert outcome.succeeded, outcome.failure
    assert outcome.stdout.data == b"y\n" * 500
    assert outcome.stdout.total_bytes == 100_000
    assert outcome.stdout.render().endswith(b"[decloud: log truncated, 99000 more bytes dropped]\n")
    assert outcome.stderr.data == b"oops\n"


# --- every way a run can fail -----------------------------------------------------------------


def test_a_missing_image_is_reported_before_anything_runs(
    docker_runtime: DockerRuntime, spec_for: SpecFor
) -> None:
    outcome = run(docker_runtime, spec_for(AppType.OCI, "localhost/decloud/no-such-image:1"))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.IMAGE_MISSING
    assert "no-such-image:1 is not in the engine" in outcome.failure.message


def test_an_image_that_is_not_the_registered_one_does_not_run(
    docker_runtime: DockerRuntime, spec_for: SpecFor, hello_image: str
) -> None:
    spec = spec_for(AppType.OCI, HELLO_TAG, checksum=b"\x11" * 32)
    outcome = run(docker_runtime, spec)

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.CHECKSUM_MISMATCH
    assert hello_image in outcome.failure.message
    assert not spec.output_dir.exists()


def test_an_app_that_exits_non_zero_reports_its_code_and_stderr(
    docker_runtime: DockerRuntime, spec_for: SpecFor, shell_image: str
) -> None:
    outcome = run(docker_runtime, spec_for(AppType.OCI, SHELL_TAG, "echo broken >&2; exit 3"))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.APP_EXITED
    assert outcome.failure.exit_code == outcome.exit_code == 3
    assert outcome.stderr.data == b"broken\n"


def test_a_container_past_its_wall_time_is_killed(
    docker_runtime: DockerRuntime, spec_for: SpecFor, shell_image: str
) -> None:
    started = time.monotonic()
    outcome = run(
        docker_runtime, spec_for(AppType.OCI, SHELL_TAG, "sleep 60", limits=Limits(wall_time_s=1))
    )

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.TIMEOUT
    assert "still running after 1 s" in outcome.failure.message
    assert outcome.exit_code is None
    assert time.monotonic() - started < 15


def test_a_container_over_its_memory_limit_is_out_of_memory(
    docker_runtime: DockerRuntime, spec_for: SpecFor, shell_image: str
) -> None:
    # dd allocates its block size at once: 256 MiB in a 32 MiB container.
    script = "exec dd if=/dev/zero of=/dev/null bs=256M count=1"
    limits = Limits(memory_bytes=32 * MIB, wall_time_s=20)
    outcome = run(docker_runtime, spec_for(AppType.OCI, SHELL_TAG, script, limits=limits))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUT_OF_MEMORY
    assert f"{32 * MIB}-byte memory limit" in outcome.failure.message


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("echo '{oops' > /iexec_out/computed.json", "computed.json: not valid JSON"),
        ("echo hi > /iexec_out/a; ln -s a /iexec_out/link", "/iexec_out/link: links are refused"),
        (
            f"echo '{ESCAPING}' > /iexec_out/computed.json",
            "is outside the output /iexec_out",
        ),
    ],
    ids=["malformed-computed-json", "symlink", "path-escaping-the-output"],
)
def test_an_output_without_a_canonical_digest_is_invalid(
    docker_runtime: DockerRuntime, spec_for: SpecFor, shell_image: str, script: str, reason: str
) -> None:
    outcome = run(docker_runtime, spec_for(AppType.OCI, SHELL_TAG, script))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.OUTPUT_INVALID
    assert reason in outcome.failure.message


def test_a_restarted_worker_removes_the_containers_its_previous_life_left(
    podman: PodmanService, shell_image: str, tmp_path: Path
) -> None:
    client = connect(podman.base_url)
    worker = {"org.decloud.test-worker": tmp_path.name}
    orphan = client.containers.create(shell_image, ["sleep 60"], labels=worker)
    bystander = client.containers.create(shell_image, ["sleep 60"])
    try:
        removed = DockerRuntime(client, labels=worker).remove_leftovers()

        assert removed == [orphan.id]
        assert client.containers.get(bystander.id)
    finally:
        bystander.remove(force=True)


def test_leftovers_are_only_removed_by_a_runtime_that_can_tell_its_own(
    podman: PodmanService,
) -> None:
    with pytest.raises(ValueError, match="labels that identify this worker"):
        DockerRuntime(connect(podman.base_url)).remove_leftovers()
