"""Where the client finds the chain, the contracts, the services and the wallets.

One TOML file serves every decloud command and service (the devnet writes it). Its path is
the `--config` option, else the `DECLOUD_CONFIG` variable, else `~/.decloud/config.toml`.
The client reads five tables and ignores the others, which belong to the services:

```toml
[chain]
rpc_url = "http://127.0.0.1:8545"
chain_id = 31337
[contracts]          # the fields of decloud.chain.deploy.Deployment, except chain_id
deployed_at = 0      # optional: the block log scans start from
token = "0x..."
app_registry = "0x..."
dataset_registry = "0x..."
workerpool_registry = "0x..."
hub = "0x..."
marketplace = "0x..."
[services]           # each optional: commands that need one say so
market = "http://127.0.0.1:8700"
storage = "http://127.0.0.1:8702"
scheduler = "http://127.0.0.1:8701"
[wallet]             # optional
keystore = "~/.decloud/keystore"
default = "alice"
[apps]               # optional: names `decloud app run NAME` accepts for an app address
mandelbrot = "0x..."
```

A missing key is an error that names it and what to do; `[services]`, `[wallet]` and
`[apps]` may be left out, since not every command needs them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from eth_utils.address import is_address, to_checksum_address

from decloud.sdk import tomlwriter
from decloud.sdk.errors import ConfigError

if TYPE_CHECKING:
    from decloud.chain.deploy import Deployment

CONFIG_VARIABLE = "DECLOUD_CONFIG"
DEFAULT_CONFIG_PATH = Path("~/.decloud/config.toml")
DEFAULT_KEYSTORE = Path("~/.decloud/keystore")
CLIENT_TABLES = ("chain", "contracts", "services", "wallet", "apps")
T = TypeVar("T")
_KINDS: dict[type, str] = {int: "an integer", str: "a string"}
_FIX = "run `decloud devnet up` (it writes the config), or point --config / DECLOUD_CONFIG at one"


def config_path(path: Path | None = None) -> Path:
    """The config file to use: `path`, else `$DECLOUD_CONFIG`, else the default."""
    if path is None:
        path = Path(os.environ.get(CONFIG_VARIABLE) or DEFAULT_CONFIG_PATH)
    return path.expanduser()


@dataclass(frozen=True)
class ChainSettings:
    rpc_url: str
    chain_id: int


@dataclass(frozen=True)
class ServiceUrls:
    """Base URLs of the services; None where the config names none."""

    market: str | None = None
    storage: str | None = None
    scheduler: str | None = None


@dataclass(frozen=True)
class WalletSettings:
    """The keystore directory and the wallet used when a command names none."""

    keystore: Path = DEFAULT_KEYSTORE
    default: str | None = None
    password: str | None = None
    """The password of the keystore's wallets, written only by `decloud devnet up`, whose
    keys are anvil's public test keys. A keystore holding real keys never has its password
    in a file: it comes from DECLOUD_WALLET_PASSWORD or a prompt."""

    @classmethod
    def load(cls, path: Path | None = None) -> Self:
        """The `[wallet]` table alone: wallets can be created before any chain exists, so
        a missing default config file means the defaults (a named file must exist)."""
        resolved = config_path(path)
        if path is None and not os.environ.get(CONFIG_VARIABLE) and not resolved.exists():
            return cls(keystore=DEFAULT_KEYSTORE.expanduser())
        return cls.from_table(_read(resolved).get("wallet", {}), resolved)

    @classmethod
    def from_table(cls, table: Any, source: Path) -> Self:
        table = _as_table(table, "wallet", source)
        keystore = _optional(table, "wallet", "keystore", str, source)
        return cls(
            keystore=Path(keystore or DEFAULT_KEYSTORE).expanduser(),
            default=_optional(table, "wallet", "default", str, source),
            password=_optional(table, "wallet", "password", str, source),
        )


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to act on one decloud network."""

    chain: ChainSettings
    contracts: Deployment
    services: ServiceUrls
    wallet: WalletSettings
    source: Path | None = None
    apps: Mapping[str, str] = field(default_factory=dict)
    """App addresses by the names people give them (`[apps]`), checksummed."""

    @classmethod
    def load(cls, path: Path | None = None) -> Self:
        """Read the client tables of the config file (see `config_path`)."""
        resolved = config_path(path)
        return cls.from_document(_read(resolved), resolved)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], source: Path) -> Self:
        chain_table = _as_table(_required_table(document, "chain", source), "chain", source)
        chain = ChainSettings(
            rpc_url=_required(chain_table, "chain", "rpc_url", str, source),
            chain_id=_required(chain_table, "chain", "chain_id", int, source),
        )
        return cls(
            chain=chain,
            contracts=_contracts(document, chain.chain_id, source),
            services=_services(document.get("services", {}), source),
            wallet=WalletSettings.from_table(document.get("wallet", {}), source),
            source=source,
            apps=_apps(document.get("apps", {}), source),
        )

    def to_document(self) -> dict[str, Any]:
        """The client tables, as `save` writes them."""
        services = {k: v for k, v in asdict(self.services).items() if v is not None}
        wallet: dict[str, Any] = {"keystore": str(self.wallet.keystore)}
        if self.wallet.default is not None:
            wallet["default"] = self.wallet.default
        document: dict[str, Any] = {
            "chain": {"rpc_url": self.chain.rpc_url, "chain_id": self.chain.chain_id},
            "contracts": {
                **{name: getattr(self.contracts, name) for name in _contract_names()},
                "deployed_at": self.contracts.deployed_at,
            },
            "services": services,
            "wallet": wallet,
        }
        if self.apps:
            document["apps"] = dict(self.apps)
        return document

    def save(self, path: Path | None = None) -> Path:
        """Write the client tables to `path` (see `config_path`), keeping every other
        table of a file already there (the services' settings); returns the path."""
        resolved = config_path(path)
        document = _read(resolved) if resolved.exists() else {}
        document = {k: v for k, v in document.items() if k not in CLIENT_TABLES}
        resolved.parent.mkdir(parents=True, exist_ok=True)
        resolved.write_text(tomlwriter.dumps({**self.to_document(), **document}))
        return resolved


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError as error:
        raise ConfigError(f"no decloud config at {path}", _FIX) from error
    except OSError as error:
        raise ConfigError(f"the config {path} cannot be read: {error}", _FIX) from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"the config {path} is not valid TOML: {error}", "fix the line it names"
        ) from error


_NOT_ADDRESSES = ("chain_id", "deployed_at")


def _contract_names() -> tuple[str, ...]:
    # Imported here: the [wallet] table alone (all the wallet commands read) needs no web3,
    # which the deployment's module loads.
    from decloud.chain.deploy import Deployment

    return tuple(f.name for f in fields(Deployment) if f.name not in _NOT_ADDRESSES)


def _contracts(document: Mapping[str, Any], chain_id: int, source: Path) -> Deployment:
    from decloud.chain.deploy import Deployment

    table = _as_table(_required_table(document, "contracts", source), "contracts", source)
    addresses = {name: _address(table, name, source) for name in _contract_names()}
    deployed_at = _optional(table, "contracts", "deployed_at", int, source) or 0
    if deployed_at < 0:
        raise ConfigError(
            f"[contracts] deployed_at in {source} is a block number, not {deployed_at}",
            "fix the config file",
        )
    return Deployment(chain_id=chain_id, deployed_at=deployed_at, **addresses)


def _services(table: Any, source: Path) -> ServiceUrls:
    table = _as_table(table, "services", source)
    names = (f.name for f in fields(ServiceUrls))
    return ServiceUrls(**{name: _optional(table, "services", name, str, source) for name in names})


def _apps(table: Any, source: Path) -> dict[str, str]:
    table = _as_table(table, "apps", source)
    apps = {}
    for name in table:
        address = _typed(table[name], "apps", name, str, source)
        if not is_address(address):
            raise ConfigError(
                f"[apps] {name} in {source} is not an address: {address!r}",
                "write the app's 0x-address (`decloud app show` confirms it)",
            )
        apps[name] = str(to_checksum_address(address))
    return apps


def _address(table: Mapping[str, Any], name: str, source: Path) -> str:
    value = _required(table, "contracts", name, str, source)
    if not is_address(value):
        raise ConfigError(
            f"[contracts] {name} in {source} is not an address: {value!r}",
            f"write the {name} contract's 0x-address, or {_FIX}",
        )
    return str(to_checksum_address(value))


def _required_table(document: Mapping[str, Any], table: str, source: Path) -> Any:
    if table not in document:
        raise ConfigError(f"the config {source} has no [{table}] table", _FIX)
    return document[table]


def _as_table(value: Any, table: str, source: Path) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{table}] in {source} must be a table", "fix the config file")
    return value


def _required(table: Mapping[str, Any], name: str, key: str, kind: type[T], source: Path) -> T:
    if key not in table:
        raise ConfigError(f"the config {source} has no `{key}` in its [{name}] table", _FIX)
    return _typed(table[key], name, key, kind, source)


def _optional(
    table: Mapping[str, Any], name: str, key: str, kind: type[T], source: Path
) -> T | None:
    return None if key not in table else _typed(table[key], name, key, kind, source)


def _typed(value: Any, name: str, key: str, kind: type[T], source: Path) -> T:
    # bool is an int subclass: `chain_id = true` is a mistake, not chain 1.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(
            f"[{name}] {key} in {source} must be {_KINDS.get(kind, kind.__name__)}, not {value!r}",
            "fix the config file",
        )
    return value
