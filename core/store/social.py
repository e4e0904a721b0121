"""Social sources' cursors and the engagement their items showed each time they were seen
(issue 14). Raw SQL like items.py: bulk inserts and one indexed range read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.clock import from_text, to_text
from core.items import Engagement, EngagementSeen, FetchOutcome
from core.store.sql import Sql


class SocialTables:
    sql: Sql

    def source_cursors(self) -> dict[str, str]:
        """Each social source's cursor, as its last fetch left it."""
        rows = self.sql.execute("SELECT name, cursor FROM sources WHERE cursor IS NOT NULL")
        return {name: cursor for name, cursor in rows.fetchall()}

    def record_social(self, outcome: FetchOutcome, now: datetime) -> None:
        """Store a social fetch's new cursor and the engagement it saw; called beside
        add_items, in the same transaction, so cursor and items are committed together."""
        stamp = to_text(now)
        with self.sql.atomic():
            if outcome.cursor is not None:
                self.sql.execute(
                    "UPDATE sources SET cursor = ? WHERE name = ?", [outcome.cursor, outcome.source]
                )
            self.sql.executemany(
                "INSERT INTO engagement (item_id, source, seen_at, author, likes, "
                "reposts, comments, views) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (item_id, source, seen_at) DO UPDATE SET author = excluded.author, "
                "likes = excluded.likes, reposts = excluded.reposts, "
                "comments = excluded.comments, views = excluded.views",
                [
                    (e.item_id, outcome.source, stamp, e.author, *_numbers(e))
                    for e in outcome.engagement
                ],
            )

    def engagement_since(self, sources: Sequence[str], since: datetime) -> list[EngagementSeen]:
        """Every engagement reading of these sources since `since`, oldest first."""
        if not sources:
            return []
        marks = ",".join("?" * len(sources))
        rows = self.sql.execute(
            "SELECT source, seen_at, item_id, author, likes, reposts, comments, views "
            f"FROM engagement WHERE source IN ({marks}) AND seen_at >= ? ORDER BY seen_at",
            [*sources, to_text(since)],
        ).fetchall()
        return [
            EngagementSeen(source, from_text(seen), Engagement(item, author, *numbers))
            for source, seen, item, author, *numbers in rows
        ]


def _numbers(engagement: Engagement) -> tuple[int, int, int, int | None]:
    return engagement.likes, engagement.reposts, engagement.comments, engagement.views
