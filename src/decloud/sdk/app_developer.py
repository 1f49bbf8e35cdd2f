"""The app developer: registers apps, whose owner is paid the app price for every task.

An app is an ERC-721 token of the app registry; whoever holds it signs the app's orders. Its
checksum pins exactly what workers may run, so it is computed from the artifact itself when
one is given (`decloud.sdk.artifacts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decloud.chain.registries import App, AppType
from decloud.sdk.artifacts import checksum_of
from decloud.sdk.connection import Connection
from decloud.sdk.errors import UnknownResource, chain_errors
from decloud.sdk.values import parse_address


@dataclass(frozen=True)
class AppInfo:
    """A registered app and its owner."""

    app: App
    owner: str

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.app.address,
            "owner": self.owner,
            "name": self.app.name,
            "type": self.app.app_type.name,
            "multiaddr": self.app.multiaddr,
            "checksum": "0x" + self.app.checksum.hex(),
            "mrenclave": "0x" + self.app.mrenclave.hex(),
            "tee": self.app.tee,
        }


class AppDeveloper:
    """Registers and inspects apps, as the connection's wallet."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def deploy(
        self,
        name: str,
        app_type: AppType,
        multiaddr: str,
        *,
        checksum: bytes | None = None,
        artifact: Path | None = None,
        mrenclave: bytes = b"",
    ) -> AppInfo:
        """Register an app owned by the wallet. Its checksum is `checksum`, or computed from
        `artifact` (the WASM module, or the OCI image as a docker-archive)."""
        checksum = checksum_of(checksum, artifact, app_type)
        address = self.connection.address
        with chain_errors(address):
            app = self.connection.apps.create_app(name, app_type, multiaddr, checksum, mrenclave)
        return self.show(app)

    def show(self, address: str) -> AppInfo:
        """The app at `address`, or UnknownResource."""
        address = parse_address(address, "app")
        with chain_errors():
            app = self.connection.apps.app(address)
            if app is None:
                raise UnknownResource(
                    f"no app at {address} in the app registry",
                    "check the address: `decloud app deploy` prints it",
                )
            return AppInfo(app, self.connection.apps.owner_of(app.address))
