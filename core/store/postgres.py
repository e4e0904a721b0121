"""The Postgres implementation of the SQL layer (psycopg 3), for stores shared by machines.

The domain modules' SQL is SQLite's and Postgres's common ground with `?` and `:name`
parameters; this module turns those into psycopg's `%s` and `%(name)s`, runs the same
numbered migrations (core.store.migrations.postgres_script) and translates errors.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Self

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from core.errors import StoreError, StoreLocked
from core.store.migrations import SCHEMA_VERSION, postgres_script
from core.store.sql import Params, Rows, Sql, StoreMissing, StoreNeedsMigration
from core.urls import safe_location

# pg_advisory_xact_lock's key while migrating: two processes starting together migrate once.
_MIGRATION_LOCK = 0x7472656E64  # "trend"
_VERSION_TABLE = "trendfinder_schema"
# How often a process waiting for a named lock asks again (a wait that holds no lock of its
# own, so lock_timeout never cuts a long wait for a grouping run short).
_LOCK_POLL = 0.1
# The store compares ISO times and ids as text, as SQLite does, byte by byte; a locale's
# collation (en-US puts 'a' before 'B' and ignores '_' at first) would order them otherwise.
_TOKEN = re.compile(r"'(?:[^']|'')*'|::|\?|:(\w+)|%")


@functools.lru_cache(maxsize=1024)
def psycopg_sql(sql: str) -> str:
    """`?` and `:name` parameters as psycopg's `%s` and `%(name)s`; a literal % doubled."""

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return text  # a string literal or a :: cast, as it is

    return _TOKEN.sub(token, sql)


class PostgresSql(Sql):
    """A psycopg connection in autocommit mode: a lone write commits; `atomic()` is a
    transaction, nested ones savepoints (psycopg's own nesting)."""

    def __init__(self, conn: psycopg.Connection[Any], location: str, busy_timeout: float) -> None:
        self.conn = conn
        self.location = location
        self.busy_timeout = busy_timeout
        self.dialect = "postgresql"

    @classmethod
    def open(cls, url: str, busy_timeout: float, *, read_only: bool = False) -> Self:
        location = safe_location(url)
        options = f"-c lock_timeout={int(busy_timeout * 1000)}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10, options=options)
        except psycopg.Error as error:
            raise _store_error(location, error, busy_timeout, "open") from error
        sql = cls(conn, location, busy_timeout)
        try:
            sql._check_collation()
            sql._migrate(read_only)
        except BaseException as error:
            conn.close()
            if isinstance(error, psycopg.Error):
                raise _store_error(location, error, busy_timeout, "open") from error
            raise
        return sql

    def _check_collation(self) -> None:
        # By behaviour, not by name: a libc "C" database may still have an ICU locale.
        [(byte_order,)] = self.conn.execute("SELECT 'B' < 'a' AND 'a_c' < 'ab'").fetchall()
        if not byte_order:
            raise StoreError(
                f"the database of the store at {self.location} orders text by a locale's "
                "rules; trendfinder compares times and ids as text and needs the C collation "
                "(createdb --locale=C --template=template0)"
            )

    def _version(self) -> int | None:
        found = self.conn.execute("SELECT to_regclass(%s)", [_VERSION_TABLE]).fetchone()
        if found is None or found[0] is None:
            return None
        row = self.conn.execute(f"SELECT max(version) FROM {_VERSION_TABLE}").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self, read_only: bool) -> None:
        version = self._version()
        if read_only:
            if version is None:
                raise StoreMissing(
                    f"there is no store at {self.location} yet; `trendfinder run` creates it"
                )
            self._refuse_newer(version)
            if version < SCHEMA_VERSION:
                raise StoreNeedsMigration(self.location, version)
            return
        if version == SCHEMA_VERSION:
            return
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} (version INTEGER)")
            version = self._version() or 0  # again, now that no one else migrates
            self._refuse_newer(version)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                if script := postgres_script(number):
                    self.conn.execute(script.encode())
            self.conn.execute(f"DELETE FROM {_VERSION_TABLE}")
            self.conn.execute(f"INSERT INTO {_VERSION_TABLE} VALUES (%s)", [SCHEMA_VERSION])

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.location} has schema version {version}, newer than this "
                f"trendfinder understands ({SCHEMA_VERSION}); upgrade trendfinder"
            )

    def execute(self, sql: str, params: Params = ()) -> Rows:
        return self.conn.execute(psycopg_sql(sql), _params(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(psycopg_sql(sql), rows)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(psycopg_sql(sql), _params(params)).fetchall()

    def atomic(self) -> AbstractContextManager[None]:
        return _transaction(self.conn)

    def close(self) -> None:
        self.conn.close()

    def schema_version(self) -> int:
        return self._version() or 0

    def size_bytes(self) -> int:
        row = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def translated(self, error: BaseException) -> StoreError | None:
        if isinstance(error, psycopg.Error):
            return _store_error(self.location, error, self.busy_timeout)
        return None

    def joined(self, column: str) -> str:
        return f"string_agg({column}, chr(31))"

    def least(self, first: str, second: str) -> str:
        return f"least({first}, {second})"

    def greatest(self, first: str, second: str) -> str:
        return f"greatest({first}, {second})"

    def json_array_length(self, column: str, key: str) -> str:
        return f"json_array_length(({column})::json -> '{key}')"

    def skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED"

    @contextmanager
    def exclusive(self, name: str, *, wait: bool = False) -> Iterator[bool]:
        # A session-level advisory lock: every machine using the database sees it, and the
        # server drops it when the holder's connection ends (a killed process included).
        key = lock_key(name)
        if wait:
            while not self._try_lock(key):
                time.sleep(_LOCK_POLL)
        elif not self._try_lock(key):
            yield False
            return
        try:
            yield True
        finally:
            if not self.conn.closed:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", [key])

    def _try_lock(self, key: int) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
        return bool(row and row[0])


def lock_key(name: str) -> int:
    """A named lock's 64-bit advisory key (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(f"trendfinder:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _params(params: Params) -> Params:
    # Always a value, never None: psycopg then reads %% as a literal %, as psycopg_sql meant.
    return params if isinstance(params, dict) else list(params)


@contextmanager
def _transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    with conn.transaction():
        yield


def _store_error(
    location: str, error: psycopg.Error, busy_timeout: float, verb: str = "use"
) -> StoreError:
    """What went wrong with the Postgres store, in one line that names it."""
    said = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if isinstance(error, errors.LockNotAvailable):
        return StoreLocked(
            f"the store at {location} is locked by another session ({said}; waited "
            f"{busy_timeout:g} s, storage.busy_timeout); try again later"
        )
    message = f"cannot {verb} the store at {location}: {said}"
    if isinstance(error, errors.DiskFull):
        message += "; the server's disk is full"
    return StoreError(message)
