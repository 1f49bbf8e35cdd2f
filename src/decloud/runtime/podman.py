"""Podman's Docker-compatible service on a private unix socket.

Machines without a Docker engine can still run OCI apps: `podman system service` serves the
Docker Engine API (version 1.41), which `DockerRuntime` speaks. Tests and the devnet start one
with `PodmanService`, stop it by its own PID, and never touch a system-wide socket.

The engine settings come from a `containers.conf` written next to the socket and named by
`CONTAINERS_CONF`, so nothing in /etc changes. The default is what works on hosts without
CAP_SYS_RESOURCE and with hybrid cgroups (crun fails there): the runc runtime and ulimits
that do not need raising.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from decloud.process import Child

DEFAULT_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


class PodmanError(RuntimeError):
    """Podman is missing, or its service did not start."""


def find_podman() -> Path | None:
    """The podman binary on PATH, or None."""
    found = shutil.which("podman")
    return Path(found) if found else None


class PodmanService:
    """A `podman system service` owned by this process; use it as a context manager.

    `base_url` is what `docker.DockerClient(base_url=..., version="1.41")` takes.
    """

    def __init__(
        self,
        *,
        containers_conf: str = DEFAULT_CONTAINERS_CONF,
        binary: Path | None = None,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._containers_conf = containers_conf
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._directory: Path | None = None
        self._child: Child | None = None

    @property
    def pid(self) -> int:
        if self._child is None:
            raise PodmanError("the podman service is not running")
        return self._child.pid

    @property
    def socket_path(self) -> Path:
        if self._directory is None:
            raise PodmanError("the podman service is not running")
        return self._directory / "podman.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def environment(self) -> dict[str, str]:
        """Variables that make a `podman` command use this service's engine settings."""
        return {"CONTAINERS_CONF": str(self.socket_path.with_name("containers.conf"))}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the service and return once it answers /_ping."""
        if self._child is not None:
            raise PodmanError("the podman service is already running")
        binary = self._binary or find_podman()
        if binary is None:
            raise PodmanError("podman not found: apt-get install podman runc")
        self._directory = Path(tempfile.mkdtemp(prefix="decloud-podman-"))
        conf = self._directory / "containers.conf"
        conf.write_text(self._containers_conf)
        try:
            self._child = Child(
                "podman system service",
                [str(binary), "system", "service", "--time=0", self.base_url],
                PodmanError,
                env={**os.environ, **self.environment},
                # conmon drops bookkeeping files (such as "oom") in its working directory.
                cwd=self._directory,
            )
            self._child.wait_until_ready(
                self._answers_ping, self._startup_timeout, str(self.socket_path)
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the service (terminate, then kill if it does not exit in time)."""
        child, self._child = self._child, None
        if child is not None:
            child.stop(self._stop_timeout)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(2.0)
                connection.connect(str(self.socket_path))
                connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
                return connection.recv(64).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
        except OSError:
            return False
