"""The OCI runtime's confinement, read from the container options it builds: no engine
needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from docker.types import DeviceRequest

from decloud.chain.registries import AppType
from decloud.runtime import DockerRuntime, FailureCause, RunSpec, connect
from decloud.runtime.oci import FALLBACK_USER, LABEL, container_options

SpecFor = Callable[..., RunSpec]


@pytest.fixture
def oci_spec(tmp_path: Path) -> RunSpec:
    return RunSpec(AppType.OCI, "app:1", tmp_path / "in", tmp_path / "out", args=("a", "b"))


def test_containers_are_confined(oci_spec: RunSpec) -> None:
    options = container_options(oci_spec, None, labels={"worker": "0xabc"})

    assert options["network_mode"] == "none"
    assert options["read_only"] is True
    assert options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["mem_limit"] == options["memswap_limit"] == oci_spec.limits.memory_bytes
    assert options["nano_cpus"] == 1_000_000_000
    assert options["pids_limit"] == oci_spec.limits.pids
    assert options["command"] == ["a", "b"]
    assert options["labels"] == {"worker": "0xabc", LABEL: "1"}
    [input_mount, output_mount] = options["mounts"]
    assert (input_mount["Target"], input_mount["ReadOnly"]) == ("/iexec_in", True)
    assert (output_mount["Target"], output_mount["ReadOnly"]) == ("/iexec_out", False)
    assert "device_requests" not in options


def test_only_gpu_tagged_tasks_get_the_gpus(oci_spec: RunSpec, tmp_path: Path) -> None:
    gpu_spec = RunSpec(AppType.OCI, "app:1", tmp_path / "in", tmp_path / "out", gpu=True)

    assert "device_requests" not in container_options(oci_spec, None)
    assert container_options(gpu_spec, None)["device_requests"] == [
        DeviceRequest(count=-1, capabilities=[["gpu"]])
    ]


@pytest.mark.parametrize(
    ("image_user", "runs_as"),
    [(None, FALLBACK_USER), ("", FALLBACK_USER), ("root", FALLBACK_USER), ("0:0", FALLBACK_USER),
     ("1000:1000", "1000:1000"), ("app", "app")],
)  # fmt: skip
def test_an_image_runs_as_its_own_user_unless_that_is_root(
    oci_spec: RunSpec, image_user: str | None, runs_as: str
) -> None:
    assert container_options(oci_spec, image_user)["user"] == runs_as


def test_without_args_the_image_keeps_its_own_command(tmp_path: Path) -> None:
    spec = RunSpec(AppType.OCI, "app:1", tmp_path / "in", tmp_path / "out")

    assert container_options(spec, None)["command"] is None


def test_an_unreachable_engine_is_a_runtime_error(spec_for: SpecFor, tmp_path: Path) -> None:
    runtime = DockerRuntime(connect(f"unix://{tmp_path}/no-engine.sock", timeout=5))
    outcome = runtime.run(spec_for(AppType.OCI, "localhost/decloud/hello-oci:latest"))

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.RUNTIME_ERROR
    assert "the container engine failed" in outcome.failure.message
