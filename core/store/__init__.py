"""The store: one SQLite file (WAL mode) or a Postgres database, forward migrations, and
every query the daemon makes.

All state lives here (sources' fetch state, items, stories, runs, digests, deliveries), so
a restart, a second process or an operator's `sqlite3` session sees the same truth.
Times are fixed-width ISO-8601 UTC text (see core.clock), so they sort as text.

One facade, `Store`, over a module per domain (sources.py, items.py, digests.py, outbox.py,
runs.py, social.py, feedback.py, trends.py, jobs.py) and the SQL layer they share (sql.py:
connection, pragmas, migrations, transactions, error translation), as lemon24/reader
splits its storage. The SQL layer has two implementations, SQLite (sql.py) and Postgres
(postgres.py); the domain modules are written once against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Self

from core.errors import StoreError, StoreLocked
from core.store.digests import DigestSummary, DigestTables
from core.store.feedback import FeedbackTables, Hit
from core.store.items import AddedItems, ItemTables, SourceItems
from core.store.jobs import Job, JobQueue, JobTables, WorkerBeat
from core.store.migrations import MIGRATIONS, SCHEMA_VERSION
from core.store.outbox import Delivery, OutboxTables
from core.store.runs import RunTables
from core.store.social import SocialTables
from core.store.sources import SourceState, SourceTables
from core.store.sql import (
    DEFAULT_BUSY_TIMEOUT,
    Database,
    StoreMissing,
    StoreNeedsMigration,
    store_error,
)
from core.store.trends import AlertRecord, TrendTables

if TYPE_CHECKING:
    from core.config import StorageConfig

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AddedItems",
    "AlertRecord",
    "Delivery",
    "DigestSummary",
    "Hit",
    "Job",
    "JobQueue",
    "SourceItems",
    "SourceState",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreMissing",
    "StoreNeedsMigration",
    "WorkerBeat",
    "store_error",
]

# What `counts()` reports, for `status`.
COUNTED = ("sources", "items", "stories", "digests", "deliveries", "runs")


class Store(
    SourceTables,
    TrendTables,
    ItemTables,
    DigestTables,
    OutboxTables,
    RunTables,
    SocialTables,
    FeedbackTables,
    JobTables,
    Database,
):
    """The one interface to the database. Open with `Store.open(path)` (SQLite),
    `Store.open_url(url, state_dir)` (Postgres) or `Store.open_config(storage)`; close when
    done."""

    @classmethod
    def open_url(
        cls,
        url: str,
        state_dir: Path,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        *,
        read_only: bool = False,
    ) -> Self:
        """Open the Postgres store at `url` (postgresql://user@host/db, the password from
        the environment), creating and migrating its schema; lock files live in `state_dir`."""
        try:
            # psycopg only for those who use it: an extra, trendfinder[postgres].
            from core.store.postgres import PostgresSql
        except ImportError as error:
            raise StoreError(
                f"storage.url needs psycopg ({error}); pip install 'trendfinder[postgres]'"
            ) from error

        sql = PostgresSql.open(url, busy_timeout, read_only=read_only)
        return cls(sql, state_dir / "trendfinder.db", busy_timeout)

    @classmethod
    def open_config(cls, storage: StorageConfig, *, read_only: bool = False) -> Store:
        """The store the config's storage section names: storage.url's Postgres database,
        else the SQLite file."""
        busy = storage.busy_timeout.total_seconds()
        if storage.url is not None:
            return cls.open_url(storage.url, storage.state_dir, busy, read_only=read_only)
        return cls.open(storage.database, busy, read_only=read_only)

    def counts(self) -> dict[str, int]:
        return {
            table: int(self.sql.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in COUNTED
        }
