"""Fixtures for the contract unit tests (titanoboa, in-process EVM)."""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest

from tests.contracts.harness import Protocol, deploy


@pytest.fixture(scope="module")
def _deployed() -> Protocol:
    return deploy()


@pytest.fixture
def protocol(_deployed: Protocol) -> Iterator[Protocol]:
    """A fresh view of the deployed protocol: every test's changes are rolled back."""
    with boa.env.anchor():
        yield _deployed
