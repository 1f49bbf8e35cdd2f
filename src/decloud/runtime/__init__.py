"""App runtimes behind one interface (DESIGN.md section 3, "Runtimes" and "App contract").

The worker turns a replicate into a `RunSpec` (the app artifact and its checksum, the input
and output directories, args, the environment from `app_environment`, `Limits`) and hands it
to the `Runtime` for the app's type:

- `WasmRuntime` (WASM): WASI modules in wasmtime, with fuel and memory limits, deterministic
  to the bit and to the unit of fuel; the default for replicated tasks.
- `DockerRuntime` (OCI): images through the Docker Engine API (Docker, or Podman's compatible
  service, `PodmanService`), confined by network, filesystem, resource and privilege limits.

Either returns a `RunOutcome`: exit code, size-capped stdout and stderr, duration, fuel, and
the result digest, or a `Failure` with a `FailureCause` and a message saying what to do.
"""

from decloud.runtime.checksum import file_checksum, verify_checksum
from decloud.runtime.environment import APP_INPUT_DIR, TaskContext, app_environment
from decloud.runtime.oci import DockerRuntime, connect, verify_image_checksum
from decloud.runtime.podman import PodmanError, PodmanService
from decloud.runtime.spec import (
    DEFAULT_LOG_CAP,
    EMPTY_LOG,
    CapturedLog,
    Failure,
    FailureCause,
    Limits,
    RunOutcome,
    RunSpec,
    Runtime,
)
from decloud.runtime.wasm import WasmRuntime

__all__ = [
    "APP_INPUT_DIR",
    "DEFAULT_LOG_CAP",
    "EMPTY_LOG",
    "CapturedLog",
    "DockerRuntime",
    "Failure",
    "FailureCause",
    "Limits",
    "PodmanError",
    "PodmanService",
    "RunOutcome",
    "RunSpec",
    "Runtime",
    "TaskContext",
    "WasmRuntime",
    "app_environment",
    "connect",
    "file_checksum",
    "verify_checksum",
    "verify_image_checksum",
]
