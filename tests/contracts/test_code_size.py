"""Static properties of the contracts: every deployed contract fits EIP-170, and every revert
reason the contracts define is asserted by a test of this directory."""

from __future__ import annotations

import re
from pathlib import Path

import boa
import pytest

from tests.contracts.harness import CONTRACTS, Protocol

EIP170_LIMIT = 24_576
DEPLOYED = ["token", "apps", "datasets", "workerpools", "hub", "marketplace"]
# A revert reason is a string literal "<rule>: <what broke>" (asserts, raises, and the reason
# argument the hub passes to its lock helper).
REASON = re.compile(r'"([a-z0-9]+: [^"\n]+)"')
TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("name", DEPLOYED)
def test_runtime_code_fits_eip170(protocol: Protocol, name: str) -> None:
    """Runtime code as deployed (with its immutables) within 24,576 bytes; boa's EVM would
    refuse a larger deployment too, so this test names the culprit and its margin."""
    size = len(boa.env.get_code(getattr(protocol, name).address))
    assert 0 < size <= EIP170_LIMIT, f"{name}: {size} bytes"


def reasons_of(source: Path) -> set[str]:
    return set(REASON.findall(source.read_text()))


def test_every_revert_reason_is_asserted_by_a_test() -> None:
    tested = "".join(
        path.read_text() for path in TESTS.glob("test_*.py") if path.name != Path(__file__).name
    )
    contracts = sorted(CONTRACTS.glob("*.vy"))
    assert {path.name for path in contracts} >= {"Hub.vy", "Marketplace.vy"}
    untested = {
        path.name: sorted(reason for reason in reasons_of(path) if f'"{reason}"' not in tested)
        for path in contracts
    }
    assert {name: missing for name, missing in untested.items() if missing} == {}
