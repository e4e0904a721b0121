"""The SQL layer: the connection and its pragmas, migrations, transactions, error translation.

No business logic: what the tables mean lives in the domain modules beside this one. They
speak to `Sql`, which has two implementations: SQLite here (`SqliteSql` on sqlite-utils, the
default; `SqliteReader` on sqlite3 alone for the read-only opens of commands that only look)
and `PostgresSql` in postgres.py (psycopg 3). Domain SQL is written once, portable, with `?`
and `:name` parameters; the few fragments that differ by dialect are `Sql` methods.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from core.errors import StoreError, StoreLocked
from core.store.migrations import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import sqlite_utils

# Seconds a write waits for another process holding the database's lock (storage.busy_timeout).
DEFAULT_BUSY_TIMEOUT = 30.0
# Ids per `IN (...)` query, well below SQLite's limit on bound parameters.
CHUNK = 500


class StoreMissing(StoreError):
    """A read-only open found no store: there is nothing to read, and nothing is created."""


class StoreNeedsMigration(StoreError):
    """A read-only open found an older schema, which only a writing command migrates."""

    def __init__(self, location: Path | str, version: int) -> None:
        super().__init__(
            f"the store at {location} is at schema version {version}; `trendfinder run` will "
            f"migrate it to {SCHEMA_VERSION}"
        )
        self.version = version


def chunks(ids: Sequence[str]) -> list[list[str]]:
    """`ids` in lists of at most CHUNK, one `IN (...)` query each."""
    return [list(ids[start : start + CHUNK]) for start in range(0, len(ids), CHUNK)]


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


# How much of the file a read-only connection maps (SQLite's own limit is lower).
READ_MAP_BYTES = 1 << 40


def _connect(path: Path, busy_timeout: float, read_only: bool) -> sqlite3.Connection:
    # A statement waits `busy_timeout` for another process's lock (an operator's sqlite3
    # shell, a backup); then StoreLocked.
    if read_only:
        # mode=ro: SQLite itself refuses every write, and never creates the file.
        uri = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False)
        # Reads map the file: pages come straight from the OS's cache instead of being copied
        # into the connection's own 2 MB one, which a million rows overflow (counting the
        # store's rows for `status`: 55 ms on a fresh connection instead of 160, 22 ms on a
        # used one instead of 60-210). SQLite caps the size at its build's limit.
        conn.execute(f"PRAGMA mmap_size = {READ_MAP_BYTES}")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits to a power cut
    # (not to a process crash), and a lost 'sent' mark would send a digest again.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _needs_migration(version: int, path: Path) -> bool:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store at {path} has schema version {version}, newer than this "
            f"trendfinder understands ({SCHEMA_VERSION}); upgrade trendfinder"
        )
    return version < SCHEMA_VERSION


def _migrate(db: sqlite_utils.Database, path: Path) -> None:
    version = _version(db.conn)
    if not _needs_migration(version, path):
        return
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.atomic():
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


def _sqlite_utils() -> Any:
    """sqlite-utils, imported by the first writing open, without numpy unless the process
    already has it: sqlite-utils imports numpy (if installed) only to map numpy values to
    column types in its table API, which the store never writes through (a fifth of a
    collect's start-up). A None in sys.modules makes `import numpy` fail (Python's import
    rules)."""
    if "numpy" in sys.modules or "sqlite_utils" in sys.modules:
        import sqlite_utils

        return sqlite_utils
    sys.modules["numpy"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils
    finally:
        del sys.modules["numpy"]
    return sqlite_utils


def _statements(script: str) -> list[str]:
    """The script's statements; a trigger's body keeps its inner semicolons."""
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip().removesuffix(";"))
            pending = ""
    return statements


Params = Sequence[Any] | dict[str, Any]


class Rows(Protocol):
    """What a statement returns: sqlite3's and psycopg's cursors both are this."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Sql(ABC):
    """One open database as the domain modules see it: portable SQL with `?` and `:name`
    parameters, transactions that nest (savepoints), and the fragments that differ."""

    # Where the store is, for messages: a file's path or a server's URL without password.
    location: str
    dialect: str  # "sqlite" or "postgresql"

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Rows:
        """Run one statement; a write outside `atomic()` is committed at once."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row, all in one transaction."""

    @abstractmethod
    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows as dicts by column name."""

    @abstractmethod
    def atomic(self) -> AbstractContextManager[None]:
        """A transaction; inside another one, a savepoint."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def size_bytes(self) -> int: ...

    @abstractmethod
    def translated(self, error: BaseException) -> StoreError | None:
        """`error` as a StoreError naming the store, or None when it is not the database's."""

    # The dialect's fragments ---------------------------------------------------------------

    @abstractmethod
    def joined(self, column: str) -> str:
        """An aggregate: the column's values joined by the unit separator (\\x1f)."""

    @abstractmethod
    def least(self, first: str, second: str) -> str: ...

    @abstractmethod
    def greatest(self, first: str, second: str) -> str: ...

    @abstractmethod
    def json_array_length(self, column: str, key: str) -> str:
        """The length of the array under `key` of the JSON text in `column` (NULL if none)."""

    @abstractmethod
    def skip_locked(self) -> str:
        """What ends a SELECT that picks rows to claim, so that concurrent claimers pass over
        each other's rows instead of waiting for them."""

    @abstractmethod
    def exclusive(self, name: str, *, wait: bool = False) -> AbstractContextManager[bool]:
        """Hold the store-wide lock `name` (True), or, without `wait`, report that another
        process holds it (False). The holder's death releases it, even by SIGKILL."""

    # Helpers on top, the same for both ----------------------------------------------------

    def insert(self, table: str, values: Mapping[str, Any], returning: str | None = None) -> Any:
        """Insert one row; with `returning`, that column's value in the new row."""
        sql = f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        if returning is None:
            self.execute(sql, list(values.values()))
            return None
        # In a transaction of its own: sqlite-utils commits a lone write only when it returns
        # no rows. fetchall, not fetchone: SQLite finishes a RETURNING statement once read out.
        with self.atomic():
            rows = self.execute(f"{sql} RETURNING {returning}", list(values.values())).fetchall()
        return rows[0][0]

    def update(
        self, table: str, key: tuple[str, Any], values: Mapping[str, Any], added: str = ""
    ) -> int:
        """Set `values` in the row whose `key` column has `key` value; `added` is more SQL
        for the SET clause (an increment). The number of rows changed."""
        assignments = [f"{column} = ?" for column in values] + ([added] if added else [])
        column, value = key
        return self.execute(
            f"UPDATE {table} SET {', '.join(assignments)} WHERE {column} = ?",
            [*values.values(), value],
        ).rowcount

    def row(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        found = self.query(sql, params)
        return found[0] if found else None


class _Sqlite(Sql):
    """What both SQLite connections share: the file, its lock files and the dialect."""

    def __init__(self, conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
        self.conn = conn
        self.path = path
        self.busy_timeout = busy_timeout
        self.location = str(path)
        self.dialect = "sqlite"

    def close(self) -> None:
        self.conn.close()

    def schema_version(self) -> int:
        return _version(self.conn)

    def size_bytes(self) -> int:
        return sum(
            candidate.stat().st_size
            for candidate in (self.path, Path(f"{self.path}-wal"))
            if candidate.exists()
        )

    def translated(self, error: BaseException) -> StoreError | None:
        if isinstance(error, sqlite3.Error):
            return store_error(self.path, error, self.busy_timeout)
        return None

    def joined(self, column: str) -> str:
        return f"group_concat({column}, char(31))"

    def least(self, first: str, second: str) -> str:
        return f"min({first}, {second})"

    def greatest(self, first: str, second: str) -> str:
        return f"max({first}, {second})"

    def json_array_length(self, column: str, key: str) -> str:
        return f"json_array_length({column}, '$.{key}')"

    def skip_locked(self) -> str:
        return ""  # a SQLite write holds the whole database: claimers take turns anyway

    def exclusive(self, name: str, *, wait: bool = False) -> AbstractContextManager[bool]:
        # A flock on a file beside the database: processes sharing a SQLite file share
        # its directory.
        return _flocked(self.path.with_name(f"{self.path.name}.{name}.lock"), wait)


class SqliteSql(_Sqlite):
    """SQLite through sqlite-utils (which commits a lone write and nests `atomic()`)."""

    def __init__(self, db: sqlite_utils.Database, path: Path, busy_timeout: float) -> None:
        super().__init__(db.conn, path, busy_timeout)
        self.db = db

    def execute(self, sql: str, params: Params = ()) -> Rows:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.db.atomic():
            self.conn.executemany(sql, rows)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def atomic(self) -> AbstractContextManager[None]:
        return _no_value(self.db.atomic())


class SqliteReader(_Sqlite):
    """A read-only SQLite connection (`mode=ro`) on sqlite3 alone. Written by hand, not
    through sqlite-utils: what sqlite-utils adds is for writes (committing a lone write,
    savepoints, its table API), and importing it (its plugin machinery: pluggy, click, an
    entry-point scan) was a fifth of `status`'s start-up."""

    def execute(self, sql: str, params: Params = ()) -> Rows:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)  # refused by SQLite: the connection is read-only

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        columns = [column[0] for column in cursor.description]
        if len(set(columns)) != len(columns):
            raise StoreError(f"a query names a column twice: {', '.join(columns)}")
        return [dict(zip(columns, row, strict=True)) for row in cursor]

    @contextmanager
    def atomic(self) -> Iterator[None]:
        # Nothing to commit: a transaction only keeps the reads in it on one snapshot.
        self.conn.execute("SAVEPOINT reading")
        try:
            yield
        finally:
            self.conn.execute("RELEASE reading")


@contextmanager
def _flocked(path: Path, wait: bool) -> Iterator[bool]:
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)


@contextmanager
def _no_value(context: AbstractContextManager[Any]) -> Iterator[None]:
    with context:
        yield


class Database:
    """An open store: its SQL layer, the file whose directory holds its lock files, and its
    lock wait."""

    def __init__(
        self,
        sql: Sql,
        path: Path,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.sql = sql
        self.path = path
        self.busy_timeout = busy_timeout

    @classmethod
    def open(
        cls, path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, *, read_only: bool = False
    ) -> Self:
        """Open the SQLite store, creating and migrating it; StoreError names the file and
        the trouble.

        `read_only` (for commands that only look) creates, migrates and writes nothing: a
        missing store is StoreMissing, an older schema StoreNeedsMigration.
        """
        if read_only and not path.exists():
            raise StoreMissing(f"there is no store at {path} yet; `trendfinder run` creates it")
        conn = None
        sql: _Sqlite
        try:
            conn = _connect(path, busy_timeout, read_only)
            conn.execute("PRAGMA foreign_keys=ON")
            if read_only:
                if _needs_migration(version := _version(conn), path):
                    raise StoreNeedsMigration(path, version)
                sql = SqliteReader(conn, path, busy_timeout)
            else:
                # execute_plugins=False: no sqlite-utils plugin installed beside trendfinder
                # changes the store's connection (and no entry-point scan at each start).
                db = _sqlite_utils().Database(conn, execute_plugins=False)
                _migrate(db, path)
                sql = SqliteSql(db, path, busy_timeout)
        except BaseException as error:
            if conn is not None:
                conn.close()
            if isinstance(error, sqlite3.Error):
                raise store_error(path, error, busy_timeout, "open") from error
            if isinstance(error, OSError):
                raise StoreError(f"cannot open the store at {path}: {error.strerror}") from error
            raise
        return cls(sql, path, busy_timeout)

    @property
    def db(self) -> sqlite_utils.Database:
        """The sqlite-utils database of a SQLite store (for tests and operators' tools)."""
        if isinstance(self.sql, SqliteReader):
            db: sqlite_utils.Database = _sqlite_utils().Database(
                self.sql.conn, execute_plugins=False
            )
            return db
        if not isinstance(self.sql, SqliteSql):
            raise StoreError(f"the store at {self.sql.location} is not a SQLite file")
        return self.sql.db

    def close(self) -> None:
        self.sql.close()

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
        if error is not None and (translated := self.sql.translated(error)) is not None:
            raise translated from error

    @property
    def schema_version(self) -> int:
        return self.sql.schema_version()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.sql.atomic():
            yield

    def size_bytes(self) -> int:
        return self.sql.size_bytes()
