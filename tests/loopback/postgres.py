"""A throwaway PostgreSQL server for the tests: Debian's initdb and pg_ctl, a cluster in a
temporary directory, listening on a free 127.0.0.1 port with a password (scram-sha-256)
that clients take from PGPASSWORD, as a deployment would.

initdb refuses to run as root (CI containers run as root): then the cluster belongs to the
`postgres` user the Debian package creates, and its commands run through runuser.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

import psycopg

from .net import closed_port

USER = "trendfinder"
PASSWORD = "loopback-only"
OWNER = "postgres"  # the account the cluster runs as when the tests run as root


def postgres_bin() -> Path | None:
    """Debian's newest PostgreSQL binaries (the `postgresql` package), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    return int(Path(path).parents[1].name)


class PostgresServer:
    """Started by `start()` (or `with`); `database()` makes an empty database and returns its
    URL (postgresql://trendfinder@127.0.0.1:port/name, no password in it)."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.port = closed_port()
        self.dir = Path(tempfile.mkdtemp(prefix="trendfinder-pg-"))
        self.data = self.dir / "data"
        self._created = 0

    def _run(self, *command: str) -> None:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", OWNER, "--", *argv]
        # Bounded: initdb takes a few seconds, pg_ctl waits at most its -t.
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> Self:
        password = self.dir / "password"
        password.write_text(PASSWORD)
        if os.geteuid() == 0:
            shutil.chown(self.dir, OWNER)
            shutil.chown(password, OWNER)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={password}",
            "--auth=scram-sha-256",
            # Byte-order collation, as trendfinder's store requires (and checks).
            "--locale=C",
            "--encoding=UTF8",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} "
            # fsync off for the tests (a killed client, not a power cut, is what they test);
            # on for benchmarks, which compare with SQLite's synchronous=FULL.
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=50"
        )
        # -l: the server's output goes to a log file, not the pipes run() waits on.
        log = str(self.dir / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "60", "start"
        )
        return self

    password = PASSWORD

    @property
    def environment(self) -> dict[str, str]:
        return {"PGPASSWORD": PASSWORD}

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(), password=PASSWORD, autocommit=True)

    def database(self) -> str:
        """A new empty database; its URL."""
        self._created += 1
        name = f"t{self._created}"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
