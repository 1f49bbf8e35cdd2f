"""Fixtures for the runtime tests: the sample apps built from source, a WASM runtime with a
compiled-module cache, and a real Podman service reached through the Docker Engine API."""

from __future__ import annotations

import importlib.util
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from decloud.chain.registries import AppType
from decloud.runtime import (
    DockerRuntime,
    Limits,
    PodmanService,
    RunSpec,
    TaskContext,
    WasmRuntime,
    app_environment,
    connect,
)
from decloud.runtime.podman import find_podman

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"
APPS = Path(__file__).resolve().parent / "apps"
HELLO_TAG = "localhost/decloud/hello-oci:latest"
SHELL_TAG = "localhost/decloud/test-shell:latest"
BUILD_TIMEOUT_S = 60
TASK = TaskContext(deal_id=b"\xde" * 32, task_id=b"\x7a" * 32, task_index=0)


def _build(command: list[str]) -> None:
    """Run a build recipe, failing with its own words when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("built")


@pytest.fixture(scope="session")
def mandelbrot_wasm(built: Path) -> Path:
    """The sample WASM app, built by its own recipe."""
    module = built / "mandelbrot.wasm"
    _build([str(EXAMPLES / "mandelbrot-wasm" / "build.sh"), str(module)])
    return module


@pytest.fixture(scope="session")
def probe_wasm(built: Path) -> Path:
    """tests/runtime/apps/probe.c: reports what an app sees, or misbehaves on request."""
    module = built / "probe.wasm"
    _build(
        [
            "clang",
            "--target=wasm32-wasi",
            "-O2",
            "-Wall",
            "-Werror",
            "-Wl,--strip-all",
            "-o",
            str(module),
            str(APPS / "probe.c"),
        ]
    )
    return module


@pytest.fixture(scope="session")
def wasm_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmRuntime]:
    runtime = WasmRuntime(tmp_path_factory.mktemp("compiled"), kill_grace_s=1.0)
    yield runtime
    runtime.close()


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "data.txt").write_text("hello input\n")
    return directory


@pytest.fixture
def spec_for(input_dir: Path, tmp_path: Path) -> Callable[..., RunSpec]:
    """A RunSpec factory: a fresh output directory for each spec, the shared input, the
    environment of TASK unless told otherwise."""
    outputs = iter(range(1_000_000))

    def spec(kind: AppType, app: str | Path, *args: str, **fields: object) -> RunSpec:
        fields.setdefault("limits", Limits(wall_time_s=20.0))
        fields.setdefault("env", app_environment(TASK))
        return RunSpec(
            kind,
            str(app),
            input_dir,
            tmp_path / f"out-{next(outputs)}",
            args=args,
            **fields,  # type: ignore[arg-type]
        )

    return spec


@pytest.fixture
def wat_module(tmp_path: Path) -> Callable[[str], Path]:
    """Write a module in the WebAssembly text format; wasmtime compiles it directly."""

    def write(text: str) -> Path:
        path = tmp_path / f"module-{uuid.uuid4().hex}.wat"
        path.write_text(text)
        return path

    return write


def _hello_build_script() -> ModuleType:
    """examples/hello-oci/build.py, imported so tests can also build variants of its image."""
    location = EXAMPLES / "hello-oci" / "build.py"
    spec = importlib.util.spec_from_file_location("hello_oci_build", location)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def hello_build() -> ModuleType:
    return _hello_build_script()


@pytest.fixture(scope="session")
def podman() -> Iterator[PodmanService]:
    if find_podman() is None:
        pytest.skip("podman is not installed (apt-get install podman runc): no OCI engine")
    with PodmanService() as service:
        yield service


@pytest.fixture(scope="session")
def session_label() -> dict[str, str]:
    """Marks this session's containers, so tests can tell that none was left behind even
    when other sessions share the engine."""
    return {"org.decloud.test-session": uuid.uuid4().hex}


@pytest.fixture(scope="session")
def docker_runtime(podman: PodmanService, session_label: dict[str, str]) -> DockerRuntime:
    return DockerRuntime(connect(podman.base_url, timeout=30.0), labels=session_label)


@pytest.fixture(scope="session")
def hello_image(docker_runtime: DockerRuntime, hello_build: ModuleType, built: Path) -> str:
    """The hello-oci sample built by its recipe and loaded through the Docker API: its id."""
    archive = built / "hello-oci.tar"
    _build(["python3", str(EXAMPLES / "hello-oci" / "build.py"), str(archive)])
    return docker_runtime.load_image(archive)


@pytest.fixture(scope="session")
def shell_image(docker_runtime: DockerRuntime, hello_build: ModuleType, built: Path) -> str:
    """The sample's root filesystem with `sh -c` as entrypoint: the args are a script."""
    layer = hello_build.root_filesystem(
        hello_build.BUSYBOX.read_bytes(),
        (EXAMPLES / "hello-oci" / "app" / "run.sh").read_bytes(),
    )
    archive_bytes, _ = hello_build.image_archive(layer, tag=SHELL_TAG, entrypoint=("/bin/sh", "-c"))
    archive = built / "test-shell.tar"
    archive.write_bytes(archive_bytes)
    return docker_runtime.load_image(archive)


@pytest.fixture
def no_container_left(
    docker_runtime: DockerRuntime, podman: PodmanService, session_label: dict[str, str]
) -> Iterator[None]:
    """Fails the test if a container of this session still exists after it."""
    yield
    client = connect(podman.base_url)
    label = "=".join(next(iter(session_label.items())))
    left = client.containers.list(all=True, filters={"label": label})
    assert not left, f"containers left behind: {[container.id for container in left]}"
