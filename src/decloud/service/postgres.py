"""A throwaway PostgreSQL cluster for tests and benchmarks: its own data directory, loopback,
a free port, stopped by its own PID.

The market's benchmark and the tests need a real PostgreSQL without any setup; the server
binaries of the distribution are enough (ENVIRONMENT.md, Databases).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

BIN = Path(os.environ.get("DECLOUD_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
"""Where initdb and pg_ctl are (Debian's postgresql-15 package by default)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """A cluster that trusts local connections: for tests and benchmarks only."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="decloud-pg-"))
        self.data = self.directory / "data"
        self._databases = 0

    def _as_server_user(self, *command: str) -> list[str]:
        """PostgreSQL refuses to run as root: root runs it as the `postgres` user."""
        if os.geteuid() != 0:
            return list(command)
        return ["runuser", "-u", "postgres", "--", *command]

    def start(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        subprocess.run(
            self._as_server_user(
                str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
            ),
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        # The server inherits pg_ctl's output: a log file, not a pipe nobody would close.
        subprocess.run(
            self._as_server_user(
                str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                "-l", str(self.directory / "server.log"), "-w", "start",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown of the server, by the PID it wrote, then remove its files."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # fast shutdown
            deadline = time.monotonic() + 10
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.directory, ignore_errors=True)

    def admin_url(self) -> str:
        """The URL of the `postgres` database, where databases are created."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        self._databases += 1
        name = f"test_{self._databases}"
        with psycopg.connect(self.admin_url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started cluster, stopped and removed on exit."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
