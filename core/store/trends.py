"""Trends over time (issue 12): story histories, the stream's hourly volume, alerts and the
burst detectors' baselines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.clock import from_text, to_text
from core.crashpoints import crash_point
from core.digest import Digest, TokenUsage
from core.history import Arrival, Reported, Sighting, arrival_time
from core.items import StoredItem
from core.store.digests import DigestTables
from core.store.items import ItemTables
from core.store.sql import Sql, chunks

NO_USAGE = TokenUsage()


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


class TrendTables(ItemTables, DigestTables):
    """Mixed into Store before the tables whose helpers it uses."""

    sql: Sql

    def _alert_rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return self.sql.query(sql, params)

    def story_arrivals(
        self, story_ids: Sequence[str], since: datetime
    ) -> dict[str, tuple[Arrival, ...]]:
        """Each story's arrivals since `since`: every source's first sight of each item, dated
        by the item's own date when that is plausible (see core.history)."""
        found: dict[str, list[Arrival]] = {}
        for chunk in chunks(story_ids):
            rows = self.sql.execute(
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
        rows = self.sql.execute(
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
        wide_ids = [row[0] for row in self.sql.execute(wide, params).fetchall()]
        # The wide stories' outlets by their items (the story index), not by the sources'
        # items over all time: the planner walked all of them (24 s at a million items). The
        # sources are kept in Python: with `s.source IN (...)` in this join SQLite probes
        # every (item, source) pair of the primary key (4.5 s for 2,000 stories at 50k items).
        followed = set(sources)
        carried: Counter[str] = Counter()
        for chunk in chunks(wide_ids):
            rows = self.sql.execute(
                "SELECT DISTINCT i.story_id, s.source FROM items i "
                "JOIN item_sources s ON s.item_id = i.id "
                f"WHERE i.story_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            carried.update(source for _, source in rows if source in followed)
        return len(wide_ids), dict(carried)

    def reported_items(
        self, profile: str, story_ids: Sequence[str], since: datetime
    ) -> dict[str, Reported]:
        """The items the profile's digests since `since` cited of each story, and when the
        first of those digests was made."""
        found: dict[str, tuple[str, list[str]]] = {}
        for chunk in chunks(story_ids):
            rows = self.sql.execute(
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
        rows = self.sql.execute(
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
        for chunk in chunks(story_ids):
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
        with self.sql.atomic():
            self._insert_digest(digest, NO_USAGE, None)
            self.sql.execute(
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
        rows = self.sql.execute(
            "SELECT subject, size FROM alerts WHERE profile = ? AND fired_at >= ? "
            "ORDER BY fired_at",
            [profile, to_text(since)],
        ).fetchall()
        return {subject: int(size) for subject, size in rows}

    def recent_alerts(
        self, limit: int = 10, since: datetime | None = None, profile: str | None = None
    ) -> list[AlertRecord]:
        """The latest alerts (of one profile, when given), newest first."""
        # The profile's condition only when there is one: Postgres cannot type a bare `? IS NULL`.
        mine, params = ("AND profile = ? ", [profile]) if profile is not None else ("", [])
        rows = self._alert_rows(
            f"SELECT * FROM alerts WHERE fired_at >= ? {mine}"
            "ORDER BY fired_at DESC, id DESC LIMIT ?",
            [to_text(since) if since else "", *params, limit],
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
        row = self.sql.execute("SELECT state FROM baselines WHERE name = ?", [name]).fetchone()
        return bytes(row[0]) if row else None

    def save_baselines(self, name: str, state: bytes, now: datetime) -> None:
        with self.sql.atomic():
            self.sql.execute(
                "INSERT INTO baselines (name, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                [name, state, to_text(now)],
            )
