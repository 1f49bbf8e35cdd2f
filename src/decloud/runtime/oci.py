"""The OCI runtime: container images run through the Docker Engine API.

Any engine that speaks the API works: Docker, or Podman's Docker-compatible service
(`decloud.runtime.podman.PodmanService`). Each run creates one container from the verified
image id (not the tag, which could move between the check and the start) with:

- no network, a read-only root filesystem, a small tmpfs on /tmp;
- the input directory bind-mounted read-only at /iexec_in, the output directory at
  /iexec_out;
- memory (no swap), CPU and pids limits; the wall-time limit kills it (-> TIMEOUT);
- no capabilities, no-new-privileges, and a non-root user: the image's own when it declares
  one, else `fallback_user`;
- GPUs only for GPU-tagged tasks;
- the engine's log driver off: stdout and stderr are read from an attach stream into
  size-capped buffers, so a chatty app fills neither the engine's disk nor the worker's memory;
- and it is removed afterwards, whatever happened (`remove_leftovers` cleans up after a
  worker that was killed mid-run).

The app's user must be able to read the input directory (world-readable files).

An image's checksum is its id (sha256 of its config, what `docker inspect` shows, reproducible
for images built like examples/hello-oci) or one of its registry digests (sha256 of its
manifest, what iExec registers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.models.images import Image
from docker.types import DeviceRequest, LogConfig, Mount

from decloud.chain.registries import AppType
from decloud.protocol.digest import APP_OUTPUT_DIR
from decloud.runtime.capture import LogCapture, drain_frames
from decloud.runtime.environment import APP_INPUT_DIR
from decloud.runtime.output import conclude, prepare_directories
from decloud.runtime.spec import (
    DEFAULT_LOG_CAP,
    MIB,
    Failure,
    FailureCause,
    RunOutcome,
    RunSpec,
)

DOCKER_API_VERSION = "1.41"
"""The API version Podman's compatible service serves; Docker engines serve it too."""
FALLBACK_USER = "65534:65534"
"""nobody:nogroup, for images that declare no user or root."""
ROOT_USERS = frozenset({"", "0", "root", "0:0", "root:root", "0:root", "root:0"})
KILLED_BY_SIGKILL = 128 + 9
LABEL = "org.decloud.runtime"
"""Marks the containers decloud creates, for operators cleaning up after a crash."""


def connect(base_url: str, *, timeout: float = 60.0) -> docker.DockerClient:
    """A client of the engine at `base_url` (unix:///path/to/socket or tcp://host:port)."""
    return docker.DockerClient(base_url=base_url, version=DOCKER_API_VERSION, timeout=timeout)


def image_checksums(image: Image) -> set[bytes]:
    """Every 32-byte checksum that names exactly this image: its id and registry digests."""
    names = [image.id, *(image.attrs.get("RepoDigests") or [])]
    checksums = set()
    for name in names:
        _, _, hex_digest = str(name).rpartition("sha256:")
        with contextlib.suppress(ValueError):
            checksums.add(bytes.fromhex(hex_digest))
    return {checksum for checksum in checksums if len(checksum) == 32}


def verify_image_checksum(image: Image, expected: bytes | None) -> Failure | None:
    """Why `image` is not the registered one, or None (also when nothing is registered)."""
    if expected is None or expected in image_checksums(image):
        return None
    return Failure(
        FailureCause.CHECKSUM_MISMATCH,
        f"the image {image.id} is not the app's checksum 0x{expected.hex()} "
        f"(registry digests: {image.attrs.get('RepoDigests') or 'none'})",
    )


def container_options(
    spec: RunSpec,
    image_user: str | None,
    *,
    fallback_user: str = FALLBACK_USER,
    tmpfs_bytes: int = 64 * MIB,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The arguments of `containers.create` (besides the image) that confine one run.

    A pure function of the spec, so that the confinement can be read and tested without an
    engine.
    """
    user = image_user if (image_user or "") not in ROOT_USERS else fallback_user
    options: dict[str, Any] = {
        "command": list(spec.args) or None,
        "environment": dict(spec.env),
        "user": user,
        "network_mode": "none",
        "network_disabled": True,
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={tmpfs_bytes}"},
        "mounts": [
            Mount(str(APP_INPUT_DIR), str(spec.input_dir.resolve()), type="bind", read_only=True),
            Mount(str(APP_OUTPUT_DIR), str(spec.output_dir.resolve()), type="bind"),
        ],
        "mem_limit": spec.limits.memory_bytes,
        "memswap_limit": spec.limits.memory_bytes,
        "nano_cpus": round(spec.limits.cpus * 1e9),
        "pids_limit": spec.limits.pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "log_config": LogConfig(type="none"),
        "labels": {**(labels or {}), LABEL: "1"},
    }
    if spec.gpu:
        options["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


@dataclass(frozen=True)
class _Ended:
    """How a container's run ended."""

    exit_code: int
    duration_s: float
    timed_out: bool
    oom_killed: bool


class DockerRuntime:
    """Runs OCI images through a Docker Engine API client (see `connect`).

    `labels` are added to every container (say, the worker's address), for operators.
    `stop_timeout_s` bounds the wait for a killed container to stop and for its output to
    end; every other engine call is bounded by the client's timeout (see `connect`), so a
    stuck engine cannot hang the worker either.
    """

    kind = AppType.OCI

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        log_cap: int = DEFAULT_LOG_CAP,
        fallback_user: str = FALLBACK_USER,
        tmpfs_bytes: int = 64 * MIB,
        stop_timeout_s: float = 10.0,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._labels = dict(labels or {})
        self._log_cap = log_cap
        self._fallback_user = fallback_user
        self._tmpfs_bytes = tmpfs_bytes
        self._stop_timeout_s = stop_timeout_s

    def load_image(self, archive: Path) -> str:
        """Load a docker-archive (`docker save` format) into the engine; return the id of
        the image it names first."""
        with archive.open("rb") as data:
            for message in self._client.api.load_image(data):
                if "error" in message:
                    raise RuntimeError(f"loading {archive} failed: {message['error']}")
        return _first_image_id(archive)

    def remove_leftovers(self) -> list[str]:
        """Remove the containers that carry this runtime's labels; return their ids.

        A worker killed mid-run leaves its container running, and nothing else would ever
        stop it: a restarted worker calls this first. The labels must single this worker
        out (its address, say), or the containers of others sharing the engine would go too.
        """
        if not self._labels:
            raise ValueError("remove_leftovers needs labels that identify this worker")
        filters = {"label": [f"{key}={value}" for key, value in self._labels.items()]}
        removed = []
        for container in self._client.containers.list(all=True, filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
                removed.append(str(container.id))
        return removed

    def run(self, spec: RunSpec) -> RunOutcome:
        if spec.kind is not AppType.OCI:
            raise ValueError(f"DockerRuntime runs OCI apps, not {spec.kind.name}")
        try:
            image = self._client.images.get(spec.app)
        except docker.errors.ImageNotFound:
            return RunOutcome.not_started(
                Failure(FailureCause.IMAGE_MISSING, f"the image {spec.app} is not in the engine")
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            return RunOutcome.not_started(_engine_failure(error))
        refused = verify_image_checksum(image, spec.checksum) or prepare_directories(spec)
        if refused is not None:
            return RunOutcome.not_started(refused)
        # The app runs as an unprivileged user (a mapped one under a rootless engine) that
        # does not own the directory; it is this run's alone, so opening it is harmless.
        spec.output_dir.chmod(0o777)
        options = container_options(
            spec,
            (image.attrs.get("Config") or {}).get("User"),
            fallback_user=self._fallback_user,
            tmpfs_bytes=self._tmpfs_bytes,
            labels=self._labels,
        )
        stdout, stderr = LogCapture(self._log_cap), LogCapture(self._log_cap)
        try:
            with self._container(image.id, options) as container:
                ended = self._execute(container, spec, stdout, stderr)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            return RunOutcome(
                None, stdout.result(), stderr.result(), 0.0, failure=_engine_failure(error)
            )
        digest, failure = conclude(spec, _failure(spec, ended))
        return RunOutcome(
            exit_code=None if ended.timed_out else ended.exit_code,
            stdout=stdout.result(),
            stderr=stderr.result(),
            duration_s=ended.duration_s,
            digest=digest,
            failure=failure,
        )

    @contextlib.contextmanager
    def _container(self, image_id: str, options: dict[str, Any]) -> Iterator[Container]:
        container = self._client.containers.create(image_id, **options)
        try:
            yield container
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                self._client.api.remove_container(container.id, force=True)

    def _execute(
        self, container: Container, spec: RunSpec, stdout: LogCapture, stderr: LogCapture
    ) -> _Ended:
        """Start the container and wait for its end, or kill it at its wall time."""
        # Attached before the start, so not a byte of output is missed.
        frames = container.attach(stdout=True, stderr=True, stream=True, logs=False, demux=True)
        reader = drain_frames(frames, stdout, stderr)
        started = time.monotonic()
        container.start()
        timed_out = False
        try:
            status = container.wait(timeout=spec.limits.wall_time_s)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            # docker-py reports a read timeout of `wait` as a ConnectionError.
            timed_out = True
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            status = container.wait(timeout=self._stop_timeout_s)
        duration = time.monotonic() - started
        reader.join(timeout=self._stop_timeout_s)
        frames.close()
        container.reload()
        oom_killed = bool(container.attrs["State"].get("OOMKilled"))
        return _Ended(int(status["StatusCode"]), duration, timed_out, oom_killed)


def _failure(spec: RunSpec, ended: _Ended) -> Failure | None:
    if ended.timed_out:
        return Failure(
            FailureCause.TIMEOUT,
            f"the container was still running after {spec.limits.wall_time_s:g} s and was killed",
        )
    # Engines on cgroup v1 (Podman here) do not always set OOMKilled; a SIGKILL nobody asked
    # for is, in a container with a memory limit, the kernel's OOM killer.
    if ended.oom_killed or ended.exit_code == KILLED_BY_SIGKILL:
        return Failure(
            FailureCause.OUT_OF_MEMORY,
            f"the container was killed for exceeding its {spec.limits.memory_bytes}-byte "
            "memory limit",
            exit_code=ended.exit_code,
        )
    if ended.exit_code != 0:
        return Failure(
            FailureCause.APP_EXITED,
            f"the app exited with code {ended.exit_code}",
            exit_code=ended.exit_code,
        )
    return None


def _engine_failure(error: Exception) -> Failure:
    return Failure(FailureCause.RUNTIME_ERROR, f"the container engine failed: {error}")


def _first_image_id(archive: Path) -> str:
    """The id of the first image in a docker-archive: sha256 of the config it names."""
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("manifest.json")
        if manifest is None:
            raise RuntimeError(f"{archive} is not a docker-archive: no manifest.json")
        config = tar.extractfile(str(json.load(manifest)[0]["Config"]))
        if config is None:
            raise RuntimeError(f"{archive}: the image config named by manifest.json is missing")
        return "sha256:" + hashlib.sha256(config.read()).hexdigest()
