#!/usr/bin/env python3
"""Build the hello-oci sample image as a reproducible docker-archive, without a registry.

    python3 examples/hello-oci/build.py [ARCHIVE]     # default: build/hello-oci.tar here

The image is one layer: Debian's static busybox (`apt-get install busybox-static`), the
applet links the app needs, a minimal /etc/passwd and the app in /app/run.sh. Every byte of
the archive is fixed (sorted entries, zero timestamps and owners, canonical JSON), so the
image id -- sha256 of its config, what `docker inspect` shows and what decloud registers as
the app's checksum -- is the same on every machine with the same busybox. Load it with
`podman load -i ARCHIVE`, `docker load -i ARCHIVE`, or `DockerRuntime.load_image`.

Only the standard library is used, so the script runs before any virtualenv exists. It takes
a few tens of milliseconds, and running it again writes the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ARCHIVE = HERE / "build" / "hello-oci.tar"
DEFAULT_TAG = "localhost/decloud/hello-oci:latest"
BUSYBOX = Path(os.environ.get("BUSYBOX", "/bin/busybox"))
APP_USER = "65534:65534"
"""nobody: the app needs no privilege, and runtimes honour an image's non-root user."""
APPLETS = (
    "[", "cat", "cut", "dd", "echo", "env", "false", "head", "id", "ls", "mkdir", "printf",
    "sh", "sha256sum", "sleep", "test", "tr", "true", "wc",
)  # fmt: skip
EPOCH = "1970-01-01T00:00:00Z"
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def _entry(name: str, kind: bytes, mode: int, *, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _tar(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A tar with exactly these entries, in name order, and nothing host-specific."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in sorted(entries, key=lambda entry: entry[0].name):
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes, mode: int) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, tarfile.REGTYPE, mode, size=len(data)), data


def root_filesystem(busybox: bytes, run_script: bytes) -> bytes:
    """The image's single layer."""
    directories = {"app": 0o755, "bin": 0o755, "etc": 0o755, "tmp": 0o1777}
    directories |= {"iexec_in": 0o755, "iexec_out": 0o755}
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_entry(name, tarfile.DIRTYPE, mode), None) for name, mode in directories.items()
    ]
    entries += [(_entry(f"bin/{name}", tarfile.SYMTYPE, 0o777, link="busybox"), None)
                for name in APPLETS]  # fmt: skip
    entries += [
        _file("bin/busybox", busybox, 0o755),
        _file("app/run.sh", run_script, 0o755),
        _file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
              0o644),
        _file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644),
    ]  # fmt: skip
    return _tar(entries)


def _canonical_json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_archive(
    layer: bytes,
    *,
    tag: str = DEFAULT_TAG,
    entrypoint: Sequence[str] = ("/app/run.sh",),
    architecture: str | None = None,
) -> tuple[bytes, str]:
    """A docker-archive (the `docker save` format) holding one image; and its image id."""
    layer_digest = hashlib.sha256(layer).hexdigest()
    machine = platform.machine()
    config = _canonical_json(
        {
            "architecture": architecture or _ARCHITECTURES.get(machine, machine),
            "os": "linux",
            "created": EPOCH,
            "config": {
                "User": APP_USER,
                "Env": ["PATH=/bin"],
                "Entrypoint": list(entrypoint),
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
            "history": [{"created": EPOCH, "created_by": "examples/hello-oci/build.py"}],
        }
    )
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = _canonical_json(
        [
            {
                "Config": f"{config_digest}.json",
                "RepoTags": [tag],
                "Layers": [f"{layer_digest}/layer.tar"],
            }
        ]
    )
    archive = _tar(
        [
            (_entry(layer_digest, tarfile.DIRTYPE, 0o755), None),
            _file(f"{layer_digest}/layer.tar", layer, 0o644),
            _file(f"{config_digest}.json", config, 0o644),
            _file("manifest.json", manifest, 0o644),
        ]
    )
    return archive, f"sha256:{config_digest}"


def build(archive_path: Path = DEFAULT_ARCHIVE, *, tag: str = DEFAULT_TAG) -> str:
    """Write the image archive to `archive_path` (atomically) and return the image id."""
    layer = root_filesystem(BUSYBOX.read_bytes(), (HERE / "app" / "run.sh").read_bytes())
    archive, image_id = image_archive(layer, tag=tag)
    archive_path.parent.mkdir(parents=True, exist_ok=True)
    partial = archive_path.with_name(f".{archive_path.name}.{os.getpid()}")
    partial.write_bytes(archive)
    os.replace(partial, archive_path)
    return image_id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", nargs="?", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--tag", default=DEFAULT_TAG)
    arguments = parser.parse_args(argv)
    if not BUSYBOX.is_file():
        print(f"{BUSYBOX} not found: apt-get install busybox-static", file=sys.stderr)
        return 1
    print(build(arguments.archive, tag=arguments.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
