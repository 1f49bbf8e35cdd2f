"""The directories around a run: checked before it, digested after it.

Both runtimes share these steps so that a WASM and an OCI app are judged by the same rules:
the output directory starts empty (left-overs of an earlier attempt would change the digest),
and a finished run's output must have a canonical digest (`decloud.protocol.digest` refuses
links, special files, names it cannot list and paths escaping the output directory).
"""

from __future__ import annotations

from decloud.protocol.digest import APP_OUTPUT_DIR, ResultDigestError, result_digest
from decloud.runtime.spec import Failure, FailureCause, RunSpec


def prepare_directories(spec: RunSpec) -> Failure | None:
    """Check the input directory and create the output directory; why not, or None."""
    if not spec.input_dir.is_dir():
        return Failure(
            FailureCause.RUNTIME_ERROR, f"the input directory {spec.input_dir} does not exist"
        )
    try:
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        not_empty = any(spec.output_dir.iterdir())
    except OSError as error:
        return Failure(
            FailureCause.RUNTIME_ERROR,
            f"the output directory {spec.output_dir} cannot be used: {error}",
        )
    if not_empty:
        return Failure(
            FailureCause.RUNTIME_ERROR,
            f"the output directory {spec.output_dir} is not empty; each run needs a fresh one",
        )
    return None


def digest_output(spec: RunSpec) -> bytes | Failure:
    """The result digest of a finished run, or why its output has none.

    The reason names paths as the app saw them (/iexec_out/...): it is the same on every
    worker and tells the requester nothing about the worker's disk.
    """
    try:
        return result_digest(spec.output_dir)
    except ResultDigestError as error:
        reason = str(error).replace(str(spec.output_dir), str(APP_OUTPUT_DIR))
        return Failure(FailureCause.OUTPUT_INVALID, f"the output was refused: {reason}")


def conclude(spec: RunSpec, failure: Failure | None) -> tuple[bytes | None, Failure | None]:
    """The digest and failure of a finished run: a run that did not fail yet is judged by
    its output."""
    if failure is not None:
        return None, failure
    checked = digest_output(spec)
    return (None, checked) if isinstance(checked, Failure) else (checked, None)
