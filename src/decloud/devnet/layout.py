"""Where a devnet keeps its files.

Everything a devnet creates lives in one directory (keys, keystore, databases, results,
logs, worker state), so that `down` can remove it in one step and a second devnet in
another directory never touches the first. Only the config file lives outside it, at the
place every other `decloud` command looks for it.

The light modules of this package (this one, `cast`, `config`, `launcher`, `processes`,
`record`, `tomlfile`, `lifecycle`) import only the standard library, so that `devnet up`
can start its service launcher before it imports web3 itself: both imports take seconds.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CONFIG_VARIABLE = "DECLOUD_CONFIG"
"""Names the config file, as `decloud.service.settings` reads it (not imported from there:
`devnet up` imports only the standard library before it starts the service launcher)."""
DIR_VARIABLE = "DECLOUD_DEVNET_DIR"
"""Names the devnet directory when the command line does not."""

LOGS = "logs"
_KEYS = "keys"
_KEYSTORE = "keystore"
_DATA = "data"
_WORKERS = "workers"
_APPS = "apps"
_DEPLOYMENT = "deployment.json"
_RECORD = "devnet.json"
ENTRIES = frozenset({LOGS, _KEYS, _KEYSTORE, _DATA, _WORKERS, _APPS, _DEPLOYMENT, _RECORD})
"""Everything a devnet puts in its directory: a directory holding anything else is not
one, and is never emptied."""


class LayoutError(RuntimeError):
    """The devnet directory holds files no devnet wrote."""


def default_config() -> Path:
    """`DECLOUD_CONFIG`, else `~/.decloud/config.toml`: the file every command reads."""
    configured = os.environ.get(CONFIG_VARIABLE)
    return Path(configured) if configured else Path.home() / ".decloud" / "config.toml"


def default_dir() -> Path:
    """`DECLOUD_DEVNET_DIR`, else `~/.decloud/devnet`."""
    configured = os.environ.get(DIR_VARIABLE)
    return Path(configured) if configured else Path.home() / ".decloud" / "devnet"


@dataclass(frozen=True)
class Layout:
    """The paths inside one devnet directory."""

    root: Path

    @property
    def keys(self) -> Path:
        """Raw key files of the services (mode 0600): the services read keys this way."""
        return self.root / _KEYS

    @property
    def keystore(self) -> Path:
        """Encrypted keyfiles of the people's roles, for the CLI and the SDK."""
        return self.root / _KEYSTORE

    @property
    def logs(self) -> Path:
        return self.root / LOGS

    @property
    def data(self) -> Path:
        """Databases of the services and the result store's archives."""
        return self.root / _DATA

    @property
    def apps(self) -> Path:
        """The sample apps' modules, registered under their `file://` URIs: the workers
        fetch them from here."""
        return self.root / _APPS

    @property
    def deployment(self) -> Path:
        """The contracts' addresses in the JSON file the services load."""
        return self.root / _DEPLOYMENT

    @property
    def record(self) -> Path:
        """What `status` and `down` need: processes, accounts, timings."""
        return self.root / _RECORD

    def log(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def key_file(self, account: str) -> Path:
        return self.keys / f"{account}.key"

    def keyfile(self, account: str) -> Path:
        return self.keystore / f"{account}.json"

    def worker_state(self, worker: str) -> Path:
        return self.root / _WORKERS / worker

    def create(self) -> None:
        """An empty devnet directory, readable by its owner only (it holds keys)."""
        self.clear(keep_logs=False)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        workers = self.root / _WORKERS
        for directory in (self.keys, self.keystore, self.logs, self.data, self.apps, workers):
            directory.mkdir(mode=0o700)

    def clear(self, *, keep_logs: bool) -> None:
        """Remove what a devnet wrote here (and the directory once empty)."""
        if not self.root.exists():
            return
        foreign = sorted(entry.name for entry in self.root.iterdir() if entry.name not in ENTRIES)
        if foreign:
            raise LayoutError(
                f"{self.root} holds files no devnet wrote ({', '.join(foreign[:5])}): "
                "choose another devnet directory (--dir or DECLOUD_DEVNET_DIR)"
            )
        for entry in self.root.iterdir():
            if keep_logs and entry.name == LOGS:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if not any(self.root.iterdir()):
            self.root.rmdir()
