"""Checksums of app artifacts: nothing runs unless it is what the registry names.

An app's on-chain checksum is the sha256 of its WASM module (for OCI images see
`decloud.runtime.oci.verify_image_checksum`). A worker verifies it right before running, not
only after downloading, so that a cache that was tampered with or half-written is caught.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from decloud.runtime.spec import Failure, FailureCause


def file_checksum(path: Path) -> bytes:
    """sha256 of a file, read in chunks: modules and datasets can be large."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").digest()


def verify_checksum(path: Path, expected: bytes | None) -> Failure | None:
    """Why the module at `path` must not run (missing, or not the registered one), or None.

    With `expected` None only the module's presence is checked.
    """
    if not path.is_file():
        return Failure(FailureCause.MODULE_MISSING, f"the module {path} does not exist")
    if expected is None:
        return None
    try:
        actual = file_checksum(path)
    except OSError as error:
        return Failure(FailureCause.MODULE_MISSING, f"the module {path} cannot be read: {error}")
    if actual != expected:
        return Failure(
            FailureCause.CHECKSUM_MISMATCH,
            f"the module {path} has sha256 0x{actual.hex()}, the app's checksum is "
            f"0x{expected.hex()}",
        )
    return None
