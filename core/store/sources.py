"""Sources and their fetch state, and the article links site sources have looked at."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.clock import to_text
from core.items import FetchOutcome
from core.store.rows import from_row
from core.store.sql import Sql

# A site page lists far fewer links than this; older ones have left the page.
SITE_LINKS_KEPT = 5000
SITE_LINKS_FORGOTTEN_AFTER = timedelta(days=180)


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


class SourceTables:
    sql: Sql

    def sync_sources(self, sources: Iterable[tuple[str, str, str]]) -> None:
        """Make the sources table match the config: (name, kind, url) for each source.

        A changed URL in the config resets the fetch state, since it is a different feed.
        """
        with self.sql.atomic():
            known = dict(self.sql.execute("SELECT name, url FROM sources").fetchall())
            for name, kind, url in sources:
                if name not in known:
                    # Another process (a worker starting beside a scheduler) may add it first.
                    self.sql.execute(
                        "INSERT INTO sources (name, kind, url, fetch_url) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (name) DO NOTHING",
                        [name, kind, url, url],
                    )
                elif known[name] != url:
                    self.sql.update(
                        "sources",
                        ("name", name),
                        {"kind": kind, "url": url, "fetch_url": url, **_FRESH},
                    )

    def source_state(self, name: str) -> SourceState:
        row = self.sql.row("SELECT * FROM sources WHERE name = ?", [name])
        if row is None:
            raise KeyError(name)
        return from_row(SourceState, row)

    def source_states(self) -> list[SourceState]:
        rows = self.sql.query("SELECT * FROM sources ORDER BY name")
        return [from_row(SourceState, row) for row in rows]

    def record_fetch(self, outcome: FetchOutcome, now: datetime, next_fetch_at: datetime) -> None:
        """Store what an attempt learned about its source (not its items: see add_items)."""
        failed = outcome.status == "error"
        updates: dict[str, Any] = {
            "last_attempt_at": to_text(now),
            "next_fetch_at": to_text(next_fetch_at),
            "last_status": outcome.http_status,
        }
        if failed:
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
        # Raw SQL, not Table.update: that reads the row and the table's schema back first,
        # six times slower (tests/bench/bench_store.py's 1,000 sources in one transaction:
        # 1.0 s against 0.16 s), and a cycle records every source it polled.
        failures = "failures + 1" if failed else "0"
        self.sql.update("sources", ("name", outcome.source), updates, f"failures = {failures}")

    def site_links(self, source: str, limit: int = SITE_LINKS_KEPT) -> frozenset[str]:
        """The article links a site source has looked at, most recently seen first."""
        rows = self.sql.execute(
            "SELECT url FROM site_links WHERE source = ? ORDER BY last_seen DESC LIMIT ?",
            [source, limit],
        )
        return frozenset(url for (url,) in rows)

    def remember_links(self, source: str, links: Sequence[str], now: datetime) -> None:
        """Mark links as looked at (again) now; forget those gone from the page for long."""
        stamp = to_text(now)
        with self.sql.atomic():
            # Raw SQL: an upsert that keeps `first_seen`; sqlite-utils' upsert_all would
            # overwrite it with the row's every column.
            self.sql.executemany(
                "INSERT INTO site_links (source, url, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source, url) DO UPDATE SET last_seen = excluded.last_seen",
                [(source, link, stamp, stamp) for link in links],
            )
            self.sql.execute(
                "DELETE FROM site_links WHERE source = ? AND last_seen < ?",
                [source, to_text(now - SITE_LINKS_FORGOTTEN_AFTER)],
            )


# The fetch state of a source whose URL changed: it is a different feed now.
_FRESH = {
    "etag": None,
    "last_modified": None,
    "body_hash": None,
    "failures": 0,
    "next_fetch_at": None,
    "disabled_reason": None,
    "cursor": None,  # a social source's cursor belongs to what it watched before
}
