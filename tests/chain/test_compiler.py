"""Compiling contracts: imports resolve offline, artifacts are cached by source hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from decloud.chain import CompilationError, compile_all, compile_contract
from decloud.chain import compiler as compiler_module

COUNTER = """\
# pragma version ~=0.4.3
from snekmate.auth import ownable

initializes: ownable

count: public(uint256)


@deploy
def __init__():
    ownable.__init__()


@external
def bump():
    ownable._check_owner()
    self.count += 1
"""

# A test contract that uses a contract of the parent folder as an interface.
COUNTER_USER = """\
# pragma version ~=0.4.3
import Counter


@external
def bump(counter: address):
    extcall Counter.__interface__(counter).bump()
"""

HELPERS_MODULE = """\
# pragma version ~=0.4.3
from snekmate.auth import ownable

uses: ownable


@internal
def _only_owner():
    ownable._check_owner()
"""


@pytest.fixture
def contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small contracts directory with its own cache directory."""
    sources = tmp_path / "contracts"
    (sources / "test").mkdir(parents=True)
    (sources / "Counter.vy").write_text(COUNTER)
    (sources / "test" / "CounterUser.vy").write_text(COUNTER_USER)
    monkeypatch.setenv("DECLOUD_CONTRACTS_DIR", str(sources))
    monkeypatch.setenv("DECLOUD_CACHE_DIR", str(tmp_path / "cache"))
    return sources


@pytest.fixture
def compilations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths handed to vyper, in order."""
    seen: list[str] = []
    compile_with_vyper = compiler_module.compile_from_file_input

    def counting(file_input: Any, **kwargs: Any) -> Any:
        seen.append(str(file_input.resolved_path))
        return compile_with_vyper(file_input, **kwargs)

    monkeypatch.setattr(compiler_module, "compile_from_file_input", counting)
    return seen


def test_every_contract_compiles_with_snekmate_and_sibling_imports(contracts: Path) -> None:
    compiled = compile_all()

    assert set(compiled) == {"Counter", "CounterUser"}
    counter = compiled["Counter"]
    assert {entry["name"] for entry in counter.abi if entry["type"] == "function"} == {
        "bump",
        "count",
    }
    assert counter.bytecode.startswith("0x")
    assert counter.runtime_bytecode.startswith("0x")
    assert len(counter.bytecode) > len(counter.runtime_bytecode)


def test_second_compilation_reads_the_cache(contracts: Path, compilations: list[str]) -> None:
    first = compile_all()
    assert len(compilations) == 2

    second = compile_all()

    assert len(compilations) == 2
    assert second == first


def test_changing_any_source_invalidates_the_cache(
    contracts: Path, compilations: list[str]
) -> None:
    compile_all()
    (contracts / "Counter.vy").write_text(COUNTER + "\n# a comment changes the hash\n")

    compile_all()

    assert len(compilations) == 4


def test_one_contract_compiles_alone_even_if_another_is_broken(
    contracts: Path, compilations: list[str]
) -> None:
    (contracts / "Broken.vy").write_text("# pragma version ~=0.4.3\ndef oops(:\n")

    assert compile_contract("Counter").name == "Counter"
    assert compilations == [str(contracts / "Counter.vy")]
    with pytest.raises(CompilationError, match=r"Broken\.vy does not compile"):
        compile_all()


def test_lower_case_modules_are_not_compiled_alone(contracts: Path) -> None:
    # A module that `uses:` another cannot be compiled on its own.
    (contracts / "helpers.vy").write_text(HELPERS_MODULE)

    assert "helpers" not in compile_all()


def test_unknown_contract_is_named_in_the_error(contracts: Path) -> None:
    with pytest.raises(CompilationError, match="no contract 'Nope'"):
        compile_contract("Nope")


def test_decloud_contracts_compile() -> None:
    for name in ("Token", "AppRegistry", "DatasetRegistry", "WorkerpoolRegistry"):
        compiled = compile_contract(name)
        # EIP-170: deployed code must stay within 24,576 bytes.
        assert len(bytes.fromhex(compiled.runtime_bytecode.removeprefix("0x"))) <= 24_576
