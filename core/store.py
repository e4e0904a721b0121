"""The SQLite store: one file, WAL mode, forward migrations, and every query the daemon makes.

All state lives here (sources' fetch state, items, stories, runs, digests, deliveries), so
a restart, a second process or an operator's `sqlite3` session sees the same truth.
Times are fixed-width ISO-8601 UTC text (see core.clock), so they sort as text.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from core.clock import from_text, to_text
from core.crashpoints import crash_point
from core.digest import Digest, TokenUsage
from core.history import Arrival, Reported, Sighting, arrival_time
from core.items import FetchOutcome, NewItem, StoredItem

# Each entry upgrades the schema by one version; never edit a released entry, append one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        fetch_url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        last_attempt_at TEXT,
        last_success_at TEXT,
        next_fetch_at TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        last_status INTEGER,
        last_error TEXT,
        disabled_reason TEXT
    );
    CREATE TABLE items (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        published TEXT NOT NULL,
        fetched TEXT NOT NULL,
        updated TEXT,
        content_hash TEXT NOT NULL,
        story_id TEXT
    );
    CREATE INDEX items_fetched ON items (fetched);
    CREATE INDEX items_story ON items (story_id);
    CREATE INDEX items_ungrouped ON items (fetched) WHERE story_id IS NULL;
    CREATE TABLE item_sources (
        source TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        item_id TEXT NOT NULL REFERENCES items (id),
        PRIMARY KEY (item_id, source)
    ) WITHOUT ROWID;
    CREATE INDEX item_sources_by_source ON item_sources (source, first_seen, item_id);
    CREATE TABLE stories (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]',
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_kind ON runs (kind, started_at);
    CREATE TABLE digests (
        id TEXT PRIMARY KEY,
        profile TEXT NOT NULL,
        created_at TEXT NOT NULL,
        analyzer TEXT NOT NULL,
        window_from TEXT NOT NULL,
        window_to TEXT NOT NULL,
        body TEXT NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        run_id INTEGER REFERENCES runs (id)
    );
    CREATE INDEX digests_by_profile ON digests (profile, created_at);
    CREATE TABLE digest_items (
        profile TEXT NOT NULL,
        item_id TEXT NOT NULL REFERENCES items (id),
        digest_id TEXT NOT NULL REFERENCES digests (id),
        role TEXT NOT NULL,
        PRIMARY KEY (profile, item_id)
    ) WITHOUT ROWID;
    CREATE INDEX digest_items_by_digest ON digest_items (digest_id);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        digest_id TEXT NOT NULL REFERENCES digests (id),
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at TEXT NOT NULL,
        sent_at TEXT,
        UNIQUE (digest_id, target)
    );
    CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
    """,
    # Outbox: when the current attempt started (a 'sending' row left by a crash is
    # recognisable) and how many parts of a multi-message delivery already arrived.
    """
    ALTER TABLE deliveries ADD COLUMN last_attempt_at TEXT;
    ALTER TABLE deliveries ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0;
    """,
    # Site sources: article links already looked at, so a poll fetches only new ones.
    """
    CREATE TABLE site_links (
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (source, url)
    ) WITHOUT ROWID;
    CREATE INDEX site_links_recent ON site_links (source, last_seen);
    """,
    # item_sources with its primary-key columns first: SQLite 3.40's integrity_check
    # wrongly reports NULLs in a WITHOUT ROWID table whose key columns are not leading,
    # and operators rely on that check.
    """
    CREATE TABLE item_sources_keyed (
        item_id TEXT NOT NULL REFERENCES items (id),
        source TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        PRIMARY KEY (item_id, source)
    ) WITHOUT ROWID;
    INSERT INTO item_sources_keyed (item_id, source, first_seen)
        SELECT item_id, source, first_seen FROM item_sources;
    DROP TABLE item_sources;
    ALTER TABLE item_sources_keyed RENAME TO item_sources;
    CREATE INDEX item_sources_by_source ON item_sources (source, first_seen, item_id);
    """,
    # Trends over time (issue 12): a digest's kind (an alert is a digest that went out between
    # scheduled ones, through the same outbox), what each alert was about, and the burst
    # detectors' running baselines (one fixed-size blob each).
    """
    ALTER TABLE digests ADD COLUMN kind TEXT NOT NULL DEFAULT 'digest';
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        subject TEXT NOT NULL,
        rule TEXT NOT NULL,
        size INTEGER NOT NULL,
        fired_at TEXT NOT NULL,
        digest_id TEXT NOT NULL REFERENCES digests (id)
    );
    CREATE INDEX alerts_by_profile ON alerts (profile, fired_at);
    CREATE INDEX alerts_by_subject ON alerts (profile, subject, fired_at);
    CREATE TABLE baselines (
        name TEXT PRIMARY KEY,
        state BLOB NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
NO_USAGE = TokenUsage()
# Seconds a write waits for another process holding the database's lock (storage.busy_timeout).
DEFAULT_BUSY_TIMEOUT = 30.0
# A site page lists far fewer links than this; older ones have left the page.
SITE_LINKS_KEPT = 5000
SITE_LINKS_FORGOTTEN_AFTER = timedelta(days=180)


class StoreError(Exception):
    """The store cannot be opened or used; the message names the file."""


class StoreLocked(StoreError):
    """Another process held the store's write lock for longer than `busy_timeout`."""


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


@dataclass(frozen=True)
class SourceState:
    name: str
    kind: str
    url: str
    fetch_url: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    next_fetch_at: datetime | None
    failures: int
    last_status: int | None
    last_error: str | None
    disabled_reason: str | None


@dataclass(frozen=True)
class AddedItems:
    new: int
    updated: int
    seen: int


@dataclass(frozen=True)
class DigestSummary:
    id: str
    profile: str
    created_at: datetime
    analyzer: str
    trends: int


@dataclass(frozen=True)
class AlertRecord:
    """What an alert was about: a story id (or `topic:<term>`) and its size when it fired
    (outlets of a story, stories of a topic)."""

    profile: str
    subject: str
    rule: str
    size: int
    fired_at: datetime
    digest_id: str = ""


@dataclass(frozen=True)
class Delivery:
    id: int
    digest_id: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    sent_at: datetime | None
    last_attempt_at: datetime | None = None
    parts_sent: int = 0


def _time(value: str | None) -> datetime | None:
    return from_text(value) if value else None


class Store:
    """The one interface to the database. Open with `Store.open(path)`; close when done."""

    def __init__(
        self, db: sqlite_utils.Database, path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> None:
        self.db = db
        self.path = path
        self.busy_timeout = busy_timeout

    @classmethod
    def open(cls, path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Store:
        """Open (creating and migrating) the store; StoreError names the file and the trouble."""
        conn = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A write waits this long for another process's (an operator's sqlite3 shell, a
            # backup); then StoreLocked.
            conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits to a power cut
            # (not to a process crash), and a lost 'sent' mark would send a digest again.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            store = cls(db, path, busy_timeout)
            store._migrate()
        except sqlite3.Error as error:
            if conn is not None:
                conn.close()
            raise store_error(path, error, busy_timeout, "open") from error
        except OSError as error:
            raise StoreError(f"cannot open the store at {path}: {error.strerror}") from error
        return store

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Store:
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
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.path} has schema version {version}, newer than this "
                f"trendfinder understands ({SCHEMA_VERSION}); upgrade trendfinder"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.atomic():
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.atomic():
            yield

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    # Sources -----------------------------------------------------------------------------

    def sync_sources(self, sources: Iterable[tuple[str, str, str]]) -> None:
        """Make the sources table match the config: (name, kind, url) for each source.

        A changed URL in the config resets the fetch state, since it is a different feed.
        """
        with self.db.atomic():
            for name, kind, url in sources:
                row = self._rows("SELECT url FROM sources WHERE name = ?", [name])
                if not row:
                    self.db.execute(
                        "INSERT INTO sources (name, kind, url, fetch_url) VALUES (?, ?, ?, ?)",
                        [name, kind, url, url],
                    )
                elif row[0]["url"] != url:
                    self.db.execute(
                        "UPDATE sources SET kind = ?, url = ?, fetch_url = ?, etag = NULL, "
                        "last_modified = NULL, body_hash = NULL, failures = 0, "
                        "next_fetch_at = NULL, disabled_reason = NULL WHERE name = ?",
                        [kind, url, url, name],
                    )

    def source_state(self, name: str) -> SourceState:
        rows = self._rows("SELECT * FROM sources WHERE name = ?", [name])
        if not rows:
            raise KeyError(name)
        return _source_state(rows[0])

    def source_states(self) -> list[SourceState]:
        return [_source_state(row) for row in self._rows("SELECT * FROM sources ORDER BY name")]

    def record_fetch(self, outcome: FetchOutcome, now: datetime, next_fetch_at: datetime) -> None:
        """Store what an attempt learned about its source (not its items: see add_items)."""
        updates: dict[str, Any] = {
            "last_attempt_at": to_text(now),
            "next_fetch_at": to_text(next_fetch_at),
            "last_status": outcome.http_status,
        }
        if outcome.status == "error":
            updates["last_error"] = outcome.error
        else:
            updates.update(last_error=None, last_success_at=to_text(now))
            if outcome.status == "ok":
                updates.update(
                    etag=outcome.etag,
                    last_modified=outcome.last_modified,
                    body_hash=outcome.body_hash,
                )
        if outcome.permanent_url:
            updates["fetch_url"] = outcome.permanent_url
        if outcome.disable_reason:
            updates["disabled_reason"] = outcome.disable_reason
        assignments = ", ".join(f"{column} = ?" for column in updates)
        failures = "failures + 1" if outcome.status == "error" else "0"
        with self.db.atomic():
            self.db.execute(
                f"UPDATE sources SET {assignments}, failures = {failures} WHERE name = ?",
                [*updates.values(), outcome.source],
            )

    def site_links(self, source: str, limit: int = SITE_LINKS_KEPT) -> frozenset[str]:
        """The article links a site source has looked at, most recently seen first."""
        rows = self.db.execute(
            "SELECT url FROM site_links WHERE source = ? ORDER BY last_seen DESC LIMIT ?",
            [source, limit],
        ).fetchall()
        return frozenset(row[0] for row in rows)

    def remember_links(self, source: str, links: Sequence[str], now: datetime) -> None:
        """Mark links as looked at (again) now; forget those gone from the page for long."""
        stamp = to_text(now)
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO site_links (source, url, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source, url) DO UPDATE SET last_seen = excluded.last_seen",
                [(source, link, stamp, stamp) for link in links],
            )
            self.db.execute(
                "DELETE FROM site_links WHERE source = ? AND last_seen < ?",
                [source, to_text(now - SITE_LINKS_FORGOTTEN_AFTER)],
            )

    # Items -------------------------------------------------------------------------------

    def add_items(self, source: str, items: Sequence[NewItem], now: datetime) -> AddedItems:
        """Store a source's items: new ones inserted, changed ones updated, all linked to it.

        An item already stored (by id) is not new again, even from another source; it only
        gains that source. A changed content hash is an update, not a new item.
        """
        stamp = to_text(now)
        known: dict[str, str] = {}
        ids = [item.id for item in items]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, content_hash FROM items WHERE id IN ({marks})"
            known.update(self.db.execute(query, chunk).fetchall())
        fresh = [item for item in items if item.id not in known]
        changed = [
            item for item in items if known.get(item.id, item.content_hash) != item.content_hash
        ]
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO items (id, url, title, text, published, fetched, "
                "content_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        item.id,
                        item.url,
                        item.title,
                        item.text,
                        to_text(item.published),
                        stamp,
                        item.content_hash,
                    )
                    for item in fresh
                ],
            )
            self.db.conn.executemany(
                "UPDATE items SET title = ?, text = ?, content_hash = ?, updated = ? WHERE id = ?",
                [(item.title, item.text, item.content_hash, stamp, item.id) for item in changed],
            )
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO item_sources (item_id, source, first_seen) VALUES (?, ?, ?)",
                [(item.id, source, stamp) for item in items],
            )
        new, updated = len(fresh), len(changed)
        seen = len(items) - new - updated
        return AddedItems(new=new, updated=updated, seen=seen)

    def _items(
        self, where: str, params: Sequence[Any], text_chars: int | None = None
    ) -> list[StoredItem]:
        text = "i.text" if text_chars is None else f"substr(i.text, 1, {int(text_chars)})"
        rows = self._rows(
            f"SELECT i.id, i.url, i.title, {text} AS text, i.published, i.fetched, i.story_id, "
            "(SELECT group_concat(source, char(31)) FROM item_sources s "
            f"WHERE s.item_id = i.id) AS source_names FROM items i WHERE {where}",
            params,
        )
        return [_stored_item(row) for row in rows]

    def items_by_id(self, ids: Sequence[str]) -> list[StoredItem]:
        found: list[StoredItem] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            found += self._items(f"i.id IN ({','.join('?' * len(chunk))})", chunk)
        return found

    def ungrouped_items(self, text_chars: int | None = None) -> list[StoredItem]:
        """Items not in a story yet; with `text_chars`, each text cut to its first characters."""
        return self._items("i.story_id IS NULL ORDER BY i.fetched, i.id", [], text_chars)

    def grouped_items_since(
        self, since: datetime, text_chars: int | None = None, limit: int | None = None
    ) -> list[StoredItem]:
        """Recently grouped items: the anchors that let new items join existing stories.
        With `text_chars`, each text is cut to its first characters; with `limit`, only the
        latest items (by fetch time, then id) come back."""
        return self._items(
            "i.id IN (SELECT id FROM items WHERE story_id IS NOT NULL AND fetched >= ? "
            "ORDER BY fetched DESC, id DESC LIMIT ?) ORDER BY i.fetched, i.id",
            [to_text(since), -1 if limit is None else limit],
            text_chars,
        )

    def assign_stories(
        self, stories: Mapping[str, str], merged: Mapping[str, str], now: datetime
    ) -> None:
        """Record a grouping run: `stories` maps new items to story ids, `merged` maps each story
        folded into another to the survivor. One transaction, so every item stays in a story
        that exists, and a story an earlier digest cited counts as reported under the survivor.
        """
        stamp = to_text(now)
        with self.db.atomic():
            for old, survivor in merged.items():
                self.db.execute("UPDATE items SET story_id = ? WHERE story_id = ?", [survivor, old])
                self.db.execute(
                    "UPDATE stories SET first_seen = min(first_seen, "
                    "coalesce((SELECT first_seen FROM stories WHERE id = :old), first_seen)), "
                    "last_seen = max(last_seen, "
                    "coalesce((SELECT last_seen FROM stories WHERE id = :old), last_seen)) "
                    "WHERE id = :survivor",
                    {"old": old, "survivor": survivor},
                )
                self.db.execute("DELETE FROM stories WHERE id = ?", [old])
            for item_id, story_id in stories.items():
                self.db.execute("UPDATE items SET story_id = ? WHERE id = ?", [story_id, item_id])
                self.db.execute(
                    "INSERT INTO stories (id, title, first_seen, last_seen) "
                    "SELECT ?, title, ?, ? FROM items WHERE id = ? "
                    "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
                    [story_id, stamp, stamp, item_id],
                )

    def pending_items(
        self, profile: str, sources: Sequence[str], since: datetime
    ) -> list[StoredItem]:
        """Items of these sources first seen since `since` that no digest of `profile` covered."""
        if not sources:
            return []
        marks = ",".join("?" * len(sources))
        return self._items(
            "i.id IN (SELECT s.item_id FROM item_sources s "
            f"WHERE s.source IN ({marks}) AND s.first_seen >= ? "
            "AND NOT EXISTS (SELECT 1 FROM digest_items d "
            "WHERE d.profile = ? AND d.item_id = s.item_id)) "
            "ORDER BY i.fetched, i.id",
            [*sources, to_text(since), profile],
        )

    def count_pending(self, profile: str, sources: Sequence[str], since: datetime) -> int:
        if not sources:
            return 0
        marks = ",".join("?" * len(sources))
        row = self.db.execute(
            "SELECT count(DISTINCT s.item_id) FROM item_sources s "
            f"WHERE s.source IN ({marks}) AND s.first_seen >= ? AND NOT EXISTS "
            "(SELECT 1 FROM digest_items d WHERE d.profile = ? AND d.item_id = s.item_id)",
            [*sources, to_text(since), profile],
        ).fetchone()
        return int(row[0])

    def reported_story_sources(self, profile: str, since: datetime) -> dict[str, frozenset[str]]:
        """Stories cited by the profile's digests since `since`, each with the sources cited."""
        rows = self.db.execute(
            "SELECT i.story_id, s.source FROM digest_items d "
            "JOIN digests g ON g.id = d.digest_id JOIN items i ON i.id = d.item_id "
            "JOIN item_sources s ON s.item_id = d.item_id "
            "WHERE d.profile = ? AND d.role = 'cited' AND g.created_at >= ? "
            "AND i.story_id IS NOT NULL",
            [profile, to_text(since)],
        ).fetchall()
        found: dict[str, set[str]] = {}
        for story, source in rows:
            found.setdefault(story, set()).add(source)
        return {story: frozenset(sources) for story, sources in found.items()}

    def items_per_source(
        self, sources: Sequence[str], since: datetime, until: datetime
    ) -> dict[str, int]:
        """How many items each source brought between `since` and `until`: its usual rate."""
        if not sources:
            return {}
        marks = ",".join("?" * len(sources))
        rows = self.db.execute(
            f"SELECT source, count(*) FROM item_sources WHERE source IN ({marks}) "
            "AND first_seen >= ? AND first_seen < ? GROUP BY source",
            [*sources, to_text(since), to_text(until)],
        ).fetchall()
        return {source: int(count) for source, count in rows}

    # Trends over time (issue 12): story histories, the stream's hourly volume ------------

    def story_arrivals(
        self, story_ids: Sequence[str], since: datetime
    ) -> dict[str, tuple[Arrival, ...]]:
        """Each story's arrivals since `since`: every source's first sight of each item, dated
        by the item's own date when that is plausible (see core.history)."""
        found: dict[str, list[Arrival]] = {}
        ids = list(story_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                "SELECT i.story_id, s.item_id, s.source, s.first_seen, i.published FROM items i "
                "JOIN item_sources s ON s.item_id = i.id "
                f"WHERE i.story_id IN ({','.join('?' * len(chunk))}) AND s.first_seen >= ? "
                "ORDER BY s.first_seen, s.item_id, s.source",
                [*chunk, to_text(since)],
            ).fetchall()
            for story, item_id, source, seen, published in rows:
                at = arrival_time(from_text(published), from_text(seen))
                found.setdefault(story, []).append(Arrival(item_id, source, at))
        return {story: tuple(arrivals) for story, arrivals in found.items()}

    def items_per_hour(
        self, sources: Sequence[str], since: datetime, until: datetime
    ) -> dict[datetime, int]:
        """Items these sources brought in each hour (hour start -> count) in [since, until)."""
        if not sources:
            return {}
        marks = ",".join("?" * len(sources))
        rows = self.db.execute(
            "SELECT substr(first_seen, 1, 13), count(DISTINCT item_id) FROM item_sources "
            f"WHERE source IN ({marks}) AND first_seen >= ? AND first_seen < ? GROUP BY 1",
            [*sources, to_text(since), to_text(until)],
        ).fetchall()
        return {
            datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC): int(count)
            for hour, count in rows
        }

    def wide_story_outlets(
        self, sources: Sequence[str], since: datetime, min_outlets: int
    ) -> tuple[int, dict[str, int]]:
        """Stories since `since` that at least `min_outlets` of these sources carried, and how
        many of those stories each source carried."""
        if not sources:
            return 0, {}
        marks = ",".join("?" * len(sources))
        wide = (
            "SELECT i.story_id FROM items i JOIN item_sources s ON s.item_id = i.id "
            f"WHERE s.source IN ({marks}) AND s.first_seen >= ? AND i.story_id IS NOT NULL "
            "GROUP BY i.story_id HAVING count(DISTINCT s.source) >= ?"
        )
        params = [*sources, to_text(since), min_outlets]
        total = self.db.execute(f"SELECT count(*) FROM ({wide})", params).fetchone()[0]
        rows = self.db.execute(
            f"SELECT s.source, count(DISTINCT i.story_id) FROM ({wide}) w "
            "JOIN items i ON i.story_id = w.story_id JOIN item_sources s ON s.item_id = i.id "
            f"WHERE s.source IN ({marks}) GROUP BY s.source",
            [*params, *sources],
        ).fetchall()
        return int(total), {source: int(count) for source, count in rows}

    def reported_items(
        self, profile: str, story_ids: Sequence[str], since: datetime
    ) -> dict[str, Reported]:
        """The items the profile's digests since `since` cited of each story, and when the
        first of those digests was made."""
        found: dict[str, tuple[str, list[str]]] = {}
        ids = list(story_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                "SELECT i.story_id, i.id, min(g.created_at) FROM digest_items d "
                "JOIN digests g ON g.id = d.digest_id JOIN items i ON i.id = d.item_id "
                "WHERE d.profile = ? AND d.role = 'cited' AND g.created_at >= ? "
                f"AND i.story_id IN ({','.join('?' * len(chunk))}) GROUP BY i.story_id, i.id",
                [profile, to_text(since), *chunk],
            ).fetchall()
            for story, item_id, created in rows:
                first, items = found.get(story, (created, []))
                found[story] = (min(first, created), [*items, item_id])
        cited = [item_id for _, item_ids in found.values() for item_id in item_ids]
        items = {item.id: item for item in self.items_by_id(cited)}
        return {
            story: Reported(
                at=from_text(first),
                items=tuple(items[i] for i in sorted(item_ids) if i in items),
            )
            for story, (first, item_ids) in found.items()
        }

    def sightings(self, since: datetime, text_chars: int) -> list[Sighting]:
        """Every source's first sight since `since` of an item in a story, oldest first, for
        the burst detectors; each text cut to its first `text_chars` characters."""
        rows = self.db.execute(
            f"SELECT i.story_id, i.id, i.title, substr(i.text, 1, {int(text_chars)}), s.source, "
            "s.first_seen, i.published FROM item_sources s JOIN items i ON i.id = s.item_id "
            "WHERE s.first_seen >= ? AND i.story_id IS NOT NULL ORDER BY s.first_seen, i.id",
            [to_text(since)],
        ).fetchall()
        return [
            Sighting(story, item, title, text, source, from_text(seen), from_text(published))
            for story, item, title, text, source, seen, published in rows
        ]

    def story_items(
        self, story_id: str, since: datetime, sources: Iterable[str]
    ) -> list[StoredItem]:
        """A story's items that these sources brought since `since`, oldest first."""
        names = sorted(sources)
        if not names:
            return []
        marks = ",".join("?" * len(names))
        return self._items(
            "i.id IN (SELECT s.item_id FROM item_sources s JOIN items j ON j.id = s.item_id "
            f"WHERE j.story_id = ? AND s.first_seen >= ? AND s.source IN ({marks})) "
            "ORDER BY i.fetched, i.id",
            [story_id, to_text(since), *names],
        )

    def lead_items(self, story_ids: Sequence[str]) -> list[StoredItem]:
        """The first item of each story (by fetch time, then id)."""
        found: list[StoredItem] = []
        ids = list(story_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found += self._items(
                "i.id IN (SELECT (SELECT j.id FROM items j WHERE j.story_id = t.story_id "
                "ORDER BY j.fetched, j.id LIMIT 1) FROM (SELECT DISTINCT story_id FROM items "
                f"WHERE story_id IN ({','.join('?' * len(chunk))})) t) ORDER BY i.id",
                chunk,
            )
        return found

    def save_alert(self, digest: Digest, targets: Sequence[str], alert: AlertRecord) -> None:
        """Store an alert: its digest, what it was about, and its queued deliveries, in one
        transaction, so an alert is either sent (once, by the outbox) or not fired at all."""
        with self.db.atomic():
            self._insert_digest(digest, NO_USAGE, None)
            self.db.execute(
                "INSERT INTO alerts (profile, subject, rule, size, fired_at, digest_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    alert.profile,
                    alert.subject,
                    alert.rule,
                    alert.size,
                    to_text(alert.fired_at),
                    digest.id,
                ],
            )
            crash_point("alert.inside_save")
            self._queue_deliveries(digest, targets)

    def alerted(self, profile: str, since: datetime) -> dict[str, int]:
        """Subjects the profile alerted on since `since`, with the size their last alert said."""
        rows = self.db.execute(
            "SELECT subject, size FROM alerts WHERE profile = ? AND fired_at >= ? "
            "ORDER BY fired_at",
            [profile, to_text(since)],
        ).fetchall()
        return {subject: int(size) for subject, size in rows}

    def recent_alerts(
        self, limit: int = 10, since: datetime | None = None, profile: str | None = None
    ) -> list[AlertRecord]:
        """The latest alerts (of one profile, when given), newest first."""
        rows = self._rows(
            "SELECT * FROM alerts WHERE fired_at >= ? AND (? IS NULL OR profile = ?) "
            "ORDER BY fired_at DESC, id DESC LIMIT ?",
            [to_text(since) if since else "", profile, profile, limit],
        )
        return [
            AlertRecord(
                profile=row["profile"],
                subject=row["subject"],
                rule=row["rule"],
                size=row["size"],
                fired_at=from_text(row["fired_at"]),
                digest_id=row["digest_id"],
            )
            for row in rows
        ]

    def baselines(self, name: str) -> bytes | None:
        row = self.db.execute("SELECT state FROM baselines WHERE name = ?", [name]).fetchone()
        return bytes(row[0]) if row else None

    def save_baselines(self, name: str, state: bytes, now: datetime) -> None:
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO baselines (name, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                [name, state, to_text(now)],
            )

    # Digests and deliveries ----------------------------------------------------------------

    def save_digest(
        self,
        digest: Digest,
        covered: Mapping[str, str],
        targets: Sequence[str],
        usage: TokenUsage,
        run_id: int | None = None,
    ) -> None:
        """Store a digest, mark the items it covered, and queue one delivery per target.

        All in one transaction: covered items are marked only if the digest is stored, and a
        stored digest always has its deliveries queued, so a crash loses neither.
        """
        with self.db.atomic():
            self._insert_digest(digest, usage, run_id)
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO digest_items (profile, item_id, digest_id, role) "
                "VALUES (?, ?, ?, ?)",
                [(digest.profile, item_id, digest.id, role) for item_id, role in covered.items()],
            )
            crash_point("digest.inside_save")
            self._queue_deliveries(digest, targets)

    def _insert_digest(self, digest: Digest, usage: TokenUsage, run_id: int | None) -> None:
        self.db.execute(
            "INSERT INTO digests (id, profile, kind, created_at, analyzer, window_from, "
            "window_to, body, input_tokens, cached_tokens, reasoning_tokens, output_tokens, "
            "cost, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                digest.id,
                digest.profile,
                digest.kind,
                to_text(digest.created_at),
                digest.analyzer,
                to_text(digest.window.from_),
                to_text(digest.window.to),
                digest.to_json(),
                usage.input,
                usage.cached,
                usage.reasoning,
                usage.output,
                usage.cost,
                run_id,
            ],
        )

    def _queue_deliveries(self, digest: Digest, targets: Sequence[str]) -> None:
        created = to_text(digest.created_at)
        self.db.conn.executemany(
            "INSERT INTO deliveries (digest_id, target, status, next_attempt_at) "
            "VALUES (?, ?, 'pending', ?)",
            [(digest.id, target, created) for target in targets],
        )

    def has_digest(self, digest_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM digests WHERE id = ?", [digest_id]).fetchone()
        return row is not None

    def digest(self, digest_id: str) -> Digest:
        rows = self._rows("SELECT body FROM digests WHERE id = ?", [digest_id])
        if not rows:
            raise KeyError(f"no digest with id {digest_id!r}")
        return Digest.model_validate_json(rows[0]["body"])

    def last_digest(self, profile: str) -> Digest | None:
        rows = self._rows(
            "SELECT body FROM digests WHERE profile = ? AND kind != 'alert' "
            "ORDER BY created_at DESC LIMIT 1",
            [profile],
        )
        return Digest.model_validate_json(rows[0]["body"]) if rows else None

    def recent_digests(self, profile: str, limit: int) -> list[Digest]:
        rows = self._rows(
            "SELECT body FROM digests WHERE profile = ? AND kind != 'alert' "
            "ORDER BY created_at DESC LIMIT ?",
            [profile, limit],
        )
        return [Digest.model_validate_json(row["body"]) for row in rows]

    def digest_summaries(self, profile: str | None = None, limit: int = 50) -> list[DigestSummary]:
        where, params = ("WHERE profile = ?", [profile]) if profile else ("", [])
        rows = self._rows(
            "SELECT id, profile, created_at, analyzer, "
            "json_array_length(body, '$.trends') AS trends FROM digests "
            f"{where} ORDER BY created_at DESC LIMIT ?",
            [*params, limit],
        )
        return [
            DigestSummary(
                id=row["id"],
                profile=row["profile"],
                created_at=from_text(row["created_at"]),
                analyzer=row["analyzer"],
                trends=int(row["trends"] or 0),
            )
            for row in rows
        ]

    def deliveries_due(self, now: datetime) -> list[Delivery]:
        """Pending deliveries whose time has come, and attempts a stopped process left open.

        A 'sending' row is an attempt that never recorded its outcome; only call this while
        holding the delivery lock, so such a row cannot belong to a live process.
        """
        rows = self._rows(
            "SELECT * FROM deliveries WHERE status = 'sending' "
            "OR (status = 'pending' AND next_attempt_at <= ?) ORDER BY next_attempt_at, id",
            [to_text(now)],
        )
        return [_delivery(row) for row in rows]

    def deliveries(self, status: str | None = None) -> list[Delivery]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._rows(f"SELECT * FROM deliveries {where} ORDER BY id", params)
        return [_delivery(row) for row in rows]

    def start_delivery_attempt(self, delivery_id: int, now: datetime) -> None:
        """Mark an attempt as started before anything is sent, so a crash leaves a trace."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, "
                "last_attempt_at = ? WHERE id = ?",
                [to_text(now), delivery_id],
            )

    def record_delivery_progress(self, delivery_id: int, parts_sent: int) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET parts_sent = ? WHERE id = ?", [parts_sent, delivery_id]
            )

    def record_delivery_sent(self, delivery_id: int, now: datetime) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, last_error = NULL "
                "WHERE id = ?",
                [to_text(now), delivery_id],
            )

    def record_delivery_failed(
        self, delivery_id: int, error: str, next_attempt_at: datetime | None
    ) -> None:
        """A failed attempt: retried at `next_attempt_at`, or given up when that is None."""
        with self.db.atomic():
            if next_attempt_at is None:
                self.db.execute(
                    "UPDATE deliveries SET status = 'failed', last_error = ? WHERE id = ?",
                    [error, delivery_id],
                )
            else:
                self.db.execute(
                    "UPDATE deliveries SET status = 'pending', last_error = ?, "
                    "next_attempt_at = ? WHERE id = ?",
                    [error, to_text(next_attempt_at), delivery_id],
                )

    # Runs --------------------------------------------------------------------------------

    def start_run(self, kind: str, now: datetime) -> int:
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO runs (kind, started_at, status) VALUES (?, ?, 'running')",
                [kind, to_text(now)],
            )
        return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        now: datetime,
        status: str,
        summary: Mapping[str, Any],
        errors: Sequence[str],
        usage: TokenUsage = NO_USAGE,
    ) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ?, errors = ?, "
                "input_tokens = ?, cached_tokens = ?, reasoning_tokens = ?, output_tokens = ?, "
                "cost = ? WHERE id = ?",
                [
                    to_text(now),
                    status,
                    json.dumps(summary, default=str),
                    json.dumps(list(errors)),
                    usage.input,
                    usage.cached,
                    usage.reasoning,
                    usage.output,
                    usage.cost,
                    run_id,
                ],
            )

    def close_unfinished_runs(self, now: datetime) -> int:
        """Mark runs a killed process left 'running' as 'abandoned'; call holding the lock."""
        with self.db.atomic():
            cursor = self.db.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ? WHERE status = 'running'",
                [to_text(now)],
            )
        return int(cursor.rowcount)

    def last_runs(self) -> list[dict[str, Any]]:
        """The latest run of each kind, as stored."""
        return self._rows(
            "SELECT * FROM runs WHERE id IN (SELECT max(id) FROM runs GROUP BY kind) ORDER BY kind"
        )

    def spend_since(self, since: datetime) -> float:
        """Model spend of the runs started since `since`, including calls that made no digest."""
        row = self.db.execute(
            "SELECT coalesce(sum(cost), 0) FROM runs WHERE started_at >= ?", [to_text(since)]
        ).fetchone()
        return float(row[0])

    def counts(self) -> dict[str, int]:
        return {
            table: int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("sources", "items", "stories", "digests", "deliveries", "runs")
        }

    def size_bytes(self) -> int:
        return sum(
            candidate.stat().st_size
            for candidate in (self.path, Path(f"{self.path}-wal"))
            if candidate.exists()
        )


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def _source_state(row: dict[str, Any]) -> SourceState:
    return SourceState(
        name=row["name"],
        kind=row["kind"],
        url=row["url"],
        fetch_url=row["fetch_url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_attempt_at=_time(row["last_attempt_at"]),
        last_success_at=_time(row["last_success_at"]),
        next_fetch_at=_time(row["next_fetch_at"]),
        failures=row["failures"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        disabled_reason=row["disabled_reason"],
    )


def _stored_item(row: dict[str, Any]) -> StoredItem:
    names = row.get("source_names") or ""
    return StoredItem(
        id=row["id"],
        url=row["url"],
        title=row["title"],
        text=row["text"],
        published=from_text(row["published"]),
        fetched=from_text(row["fetched"]),
        sources=tuple(sorted(names.split("\x1f"))) if names else (),
        story_id=row["story_id"],
    )


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        digest_id=row["digest_id"],
        target=row["target"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=from_text(row["next_attempt_at"]),
        sent_at=_time(row["sent_at"]),
        last_attempt_at=_time(row["last_attempt_at"]),
        parts_sent=row["parts_sent"],
    )
