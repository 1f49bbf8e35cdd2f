"""Compile decloud's Vyper contracts, once per version of their sources.

Compiling the hub and its registries takes seconds; every test session, devnet and CLI
deployment needs the artifacts. They are therefore cached as JSON, one file per contract,
in a directory named after a hash of everything that can change the output: every `.vy`
and `.vyi` file under the contracts directory and the versions of vyper and snekmate. A
second run with unchanged sources compiles nothing. Compilation never touches the network:
snekmate resolves from the installed Python package.

Deployable contracts are the `.vy` files whose name starts with a capital letter
(`Hub.vy`, `Token.vy`, `test/CallbackReceiver.vy`); lower-case files are Vyper modules
that only make sense inside a contract, as in snekmate, and are not compiled on their own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vyper
from vyper.compiler import compile_from_file_input
from vyper.compiler.input_bundle import FilesystemInputBundle

# src/decloud/chain/compiler.py -> the repository root of an editable install.
_SOURCE_CHECKOUT = Path(__file__).resolve().parents[3]

_OUTPUT_FORMATS = ("abi", "bytecode", "bytecode_runtime")


class CompilationError(Exception):
    """The contracts could not be found or compiled."""


@dataclass(frozen=True)
class CompiledContract:
    """What deploying and calling a contract needs: its ABI and its code."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    runtime_bytecode: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "abi": list(self.abi),
            "bytecode": self.bytecode,
            "runtime_bytecode": self.runtime_bytecode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompiledContract:
        return cls(
            name=data["name"],
            abi=tuple(data["abi"]),
            bytecode=data["bytecode"],
            runtime_bytecode=data["runtime_bytecode"],
        )


def contracts_dir() -> Path:
    """Where the Vyper sources are: `DECLOUD_CONTRACTS_DIR`, else the source checkout."""
    configured = os.environ.get("DECLOUD_CONTRACTS_DIR")
    directory = Path(configured) if configured else _SOURCE_CHECKOUT / "contracts"
    if not directory.is_dir():
        raise CompilationError(
            f"contracts directory {directory} not found: set DECLOUD_CONTRACTS_DIR to the "
            "folder holding decloud's .vy files"
        )
    return directory


def cache_dir() -> Path:
    """Root of the artifact cache: `DECLOUD_CACHE_DIR`, else `~/.cache/decloud/contracts`."""
    configured = os.environ.get("DECLOUD_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "decloud" / "contracts"


def compile_all() -> dict[str, CompiledContract]:
    """Every deployable contract by name, compiled or read from the cache."""
    sources = contracts_dir()
    artifacts = _artifact_dir(sources)
    return {
        name: _cached_or_compiled(name, path, sources, artifacts)
        for name, path in _deployable_contracts(sources).items()
    }


def compile_contract(name: str) -> CompiledContract:
    """One contract by name (`"Hub"`), compiled or read from the cache.

    Only that contract is compiled, so a half-written contract elsewhere in the directory
    does not stop the others from being used.
    """
    sources = contracts_dir()
    contracts = _deployable_contracts(sources)
    if name not in contracts:
        raise CompilationError(f"no contract {name!r} in {sources}: have {sorted(contracts)}")
    return _cached_or_compiled(name, contracts[name], sources, _artifact_dir(sources))


def _deployable_contracts(sources: Path) -> dict[str, Path]:
    contracts: dict[str, Path] = {}
    for path in sorted(sources.rglob("*.vy")):
        if not path.name[0].isupper():
            continue
        if path.stem in contracts:
            raise CompilationError(
                f"two contracts are named {path.stem}: {contracts[path.stem]} and {path}"
            )
        contracts[path.stem] = path
    return contracts


def _artifact_dir(sources: Path) -> Path:
    return cache_dir() / _sources_hash(sources)


def _sources_hash(sources: Path) -> str:
    """Hash of everything that determines the compiler output."""
    digest = hashlib.sha256()
    digest.update(f"vyper {vyper.__version__}\n".encode())
    digest.update(f"snekmate {importlib.metadata.version('snekmate')}\n".encode())
    for path in sorted([*sources.rglob("*.vy"), *sources.rglob("*.vyi")]):
        digest.update(path.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def _cached_or_compiled(name: str, path: Path, sources: Path, artifacts: Path) -> CompiledContract:
    artifact = artifacts / f"{name}.json"
    if artifact.is_file():
        return CompiledContract.from_json(json.loads(artifact.read_text()))
    compiled = _compile(name, path, sources)
    _write_atomically(artifact, json.dumps(compiled.to_json()))
    return compiled


def _compile(name: str, path: Path, sources: Path) -> CompiledContract:
    """Compile one contract; imports resolve against the contracts dir, then snekmate."""
    bundle = FilesystemInputBundle([_snekmate_root(), sources])
    try:
        output = compile_from_file_input(
            bundle.load_file(path), input_bundle=bundle, output_formats=_OUTPUT_FORMATS
        )
    except Exception as error:  # vyper raises many unrelated exception types
        raise CompilationError(f"{path} does not compile: {error}") from error
    return CompiledContract(
        name=name,
        abi=tuple(output["abi"]),
        bytecode=str(output["bytecode"]),
        runtime_bytecode=str(output["bytecode_runtime"]),
    )


def _snekmate_root() -> Path:
    """The site-packages folder holding snekmate, so `from snekmate... import` resolves."""
    spec = importlib.util.find_spec("snekmate")
    if spec is None or not spec.submodule_search_locations:
        raise CompilationError("snekmate is not installed: pip install snekmate")
    return Path(next(iter(spec.submodule_search_locations))).parent


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file so that concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
