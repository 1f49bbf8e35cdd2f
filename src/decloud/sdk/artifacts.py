"""Checksums of what app developers and dataset owners register, computed the way workers
verify them, so that a registered checksum never refuses its own artifact.

- a WASM module or a dataset file: sha256 of the file (`decloud.runtime.checksum`);
- an OCI image, given as a docker-archive (`docker save` / `podman save` output): the image
  id, sha256 of the image config the archive's manifest names first, which is what the OCI
  runtime compares after loading the archive (`docker inspect` shows the same id).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from decloud.chain.registries import AppType
from decloud.runtime.checksum import file_checksum
from decloud.sdk.errors import DecloudError


def checksum_of(
    checksum: bytes | None, artifact: Path | None, app_type: AppType | None = None
) -> bytes:
    """The checksum given, or the one computed from `artifact`: exactly one of them."""
    if checksum is not None and artifact is None:
        return checksum
    if artifact is not None and checksum is None:
        return artifact_checksum(artifact, app_type)
    raise DecloudError(
        "give exactly one of a checksum and a file to compute it from",
        "pass --checksum 0x... or --file PATH",
    )


def artifact_checksum(path: Path, app_type: AppType | None = None) -> bytes:
    """The checksum to register for the artifact at `path`: an OCI app's image archive, or
    any other file (WASM module, dataset)."""
    if not path.is_file():
        raise DecloudError(f"no file at {path}", "give the path of the module, archive or file")
    if app_type is AppType.OCI:
        return image_archive_checksum(path)
    return file_checksum(path)


def image_archive_checksum(archive: Path) -> bytes:
    """The id of the first image of a docker-archive."""
    try:
        with tarfile.open(archive) as tar:
            manifest = tar.extractfile("manifest.json")
            if manifest is None:
                raise KeyError("manifest.json")
            config = tar.extractfile(str(json.load(manifest)[0]["Config"]))
            if config is None:
                raise KeyError("the image config")
            return hashlib.sha256(config.read()).digest()
    except (tarfile.TarError, KeyError, IndexError, ValueError, OSError) as error:
        raise DecloudError(
            f"{archive} is not a docker-archive with an image: {error}",
            "save the image with `docker save IMAGE -o FILE` (or `podman save`), or give "
            "--checksum with the image id",
        ) from error
