"""The SQL layer: the connection and its pragmas, migrations, transactions, error translation.

No business logic: what the tables mean lives in the domain modules beside this one.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import sqlite_utils

from core.errors import StoreError, StoreLocked
from core.store.migrations import MIGRATIONS, SCHEMA_VERSION

# Seconds a write waits for another process holding the database's lock (storage.busy_timeout).
DEFAULT_BUSY_TIMEOUT = 30.0


class StoreMissing(StoreError):
    """A read-only open found no store: there is nothing to read, and nothing is created."""


class StoreNeedsMigration(StoreError):
    """A read-only open found an older schema, which only a writing command migrates."""

    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"the store at {path} is at schema version {version}; `trendfinder run` will "
            f"migrate it to {SCHEMA_VERSION}"
        )
        self.version = version


def store_error(
    path: Path, error: sqlite3.Error, busy_timeout: float, verb: str = "use"
) -> StoreError:
    """What went wrong with the store at `path`, in words that say what to do about it."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreLocked(
            f"the store at {path} is locked by another process ({error}; waited "
            f"{busy_timeout:g} s, storage.busy_timeout); try again later"
        )
    message = f"cannot {verb} the store at {path}: {error}"
    if code == sqlite3.SQLITE_FULL or (
        code == sqlite3.SQLITE_IOERR and _free_bytes(path.parent) < 1 << 20
    ):
        message += f"; the disk holding {path.parent} is full"
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) and _read_only(path.parent):
        message += (
            f"; the directory {path.parent} is read-only, and trendfinder writes the "
            "database, its -wal and -shm files and its lock file there"
        )
    return StoreError(message)


def _free_bytes(directory: Path) -> int:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return 1 << 62
    return stats.f_bavail * stats.f_frsize


def _read_only(directory: Path) -> bool:
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(directory, os.W_OK)


def _connect(path: Path, busy_timeout: float, read_only: bool) -> sqlite3.Connection:
    # A statement waits `busy_timeout` for another process's lock (an operator's sqlite3
    # shell, a backup); then StoreLocked.
    if read_only:
        # mode=ro: SQLite itself refuses every write, and never creates the file.
        uri = f"{path.resolve().as_uri()}?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits to a power cut
    # (not to a process crash), and a lost 'sent' mark would send a digest again.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _migrate(db: sqlite_utils.Database, path: Path, read_only: bool) -> None:
    version = _version(db)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store at {path} has schema version {version}, newer than this "
            f"trendfinder understands ({SCHEMA_VERSION}); upgrade trendfinder"
        )
    if version == SCHEMA_VERSION:
        return
    if read_only:
        raise StoreNeedsMigration(path, version)
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.atomic():
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


class Database:
    """An open store file: the sqlite-utils database, its path and its lock wait."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        path: Path,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.db = db
        self.path = path
        self.busy_timeout = busy_timeout

    @classmethod
    def open(
        cls, path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, *, read_only: bool = False
    ) -> Self:
        """Open the store, creating and migrating it; StoreError names the file and the trouble.

        `read_only` (for commands that only look) creates, migrates and writes nothing: a
        missing store is StoreMissing, an older schema StoreNeedsMigration.
        """
        if read_only and not path.exists():
            raise StoreMissing(f"there is no store at {path} yet; `trendfinder run` creates it")
        conn = None
        try:
            conn = _connect(path, busy_timeout, read_only)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA foreign_keys=ON")
            _migrate(db, path, read_only)
        except BaseException as error:
            if conn is not None:
                conn.close()
            if isinstance(error, sqlite3.Error):
                raise store_error(path, error, busy_timeout, "open") from error
            if isinstance(error, OSError):
                raise StoreError(f"cannot open the store at {path}: {error.strerror}") from error
            raise
        return cls(db, path, busy_timeout)

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
        # A full disk, a lock held too long or a vanished directory mid-run: say which store.
        if isinstance(error, sqlite3.Error):
            raise store_error(self.path, error, self.busy_timeout) from error

    @property
    def schema_version(self) -> int:
        return _version(self.db)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.atomic():
            yield

    def size_bytes(self) -> int:
        return sum(
            candidate.stat().st_size
            for candidate in (self.path, Path(f"{self.path}-wal"))
            if candidate.exists()
        )
