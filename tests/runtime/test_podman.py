"""PodmanService: a Docker-compatible engine on a private socket, stopped by its own PID."""

from __future__ import annotations

import os

import pytest

from decloud.runtime import PodmanError, PodmanService, connect
from decloud.runtime.podman import find_podman

pytestmark = pytest.mark.skipif(find_podman() is None, reason="podman is not installed")


def test_the_service_answers_the_docker_api_and_stops_by_its_pid() -> None:
    with PodmanService() as service:
        pid, socket_dir = service.pid, service.socket_path.parent
        assert connect(service.base_url, timeout=10).ping()

    assert not socket_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(PodmanError, match="not running"):
        _ = service.base_url
