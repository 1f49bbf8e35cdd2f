"""Stopping the child processes decloud starts (anvil, Podman's service, ...)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Ask `process` to exit (SIGTERM), then kill it if it has not within `timeout` seconds.

    Always reaps the child, so no zombie is left behind.
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
