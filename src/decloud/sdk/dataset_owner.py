"""The dataset owner: registers datasets, whose owner is paid the dataset price per task.

A dataset is an ERC-721 token of the dataset registry. Its checksum is that of the file
workers download (the encrypted file, for a confidential dataset), computed from the file
itself when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decloud.chain.registries import Dataset
from decloud.sdk.artifacts import checksum_of
from decloud.sdk.connection import Connection
from decloud.sdk.errors import UnknownResource, chain_errors
from decloud.sdk.values import parse_address


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset and its owner."""

    dataset: Dataset
    owner: str

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.dataset.address,
            "owner": self.owner,
            "name": self.dataset.name,
            "multiaddr": self.dataset.multiaddr,
            "checksum": "0x" + self.dataset.checksum.hex(),
        }


class DatasetOwner:
    """Registers and inspects datasets, as the connection's wallet."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def deploy(
        self,
        name: str,
        multiaddr: str,
        *,
        checksum: bytes | None = None,
        file: Path | None = None,
    ) -> DatasetInfo:
        """Register a dataset owned by the wallet; its checksum is `checksum`, or the
        sha256 of `file`."""
        checksum = checksum_of(checksum, file)
        address = self.connection.address
        with chain_errors(address):
            dataset = self.connection.datasets.create_dataset(name, multiaddr, checksum)
        return self.show(dataset)

    def show(self, address: str) -> DatasetInfo:
        """The dataset at `address`, or UnknownResource."""
        address = parse_address(address, "dataset")
        with chain_errors():
            dataset = self.connection.datasets.dataset(address)
            if dataset is None:
                raise UnknownResource(
                    f"no dataset at {address} in the dataset registry",
                    "check the address: `decloud dataset deploy` prints it",
                )
            return DatasetInfo(dataset, self.connection.datasets.owner_of(dataset.address))
