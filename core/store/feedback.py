"""What the web app reads and writes: readers' votes, full-text search, a story's items, spend."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.clock import from_text, to_text
from core.errors import StoreError
from core.items import StoredItem
from core.store.sql import Sql
from core.votes import Vote

# FTS5 query syntax is not for readers: each word becomes a quoted prefix term.
_QUERY_WORD = re.compile(r"\w+", re.UNICODE)


# How many of the newest matching items a search ranks.
RANKED = 2000


@dataclass(frozen=True)
class Hit:
    """One story found by a search, led by its best-matching item."""

    story_id: str
    title: str
    url: str
    published: datetime
    fetched: datetime
    sources: tuple[str, ...]
    items: int


def fts_query(text: str) -> str | None:
    """A reader's words as an FTS5 query that cannot be a syntax error; None when empty."""
    words = _QUERY_WORD.findall(text)[:12]
    return " ".join(f'"{word}"*' for word in words) or None


class FeedbackTables:
    sql: Sql

    def record_vote(self, vote: Vote) -> bool:
        """Store a vote; a reader's latest vote on a story replaces the earlier one.

        True when it changed something: the same vote again (a link clicked twice, a
        resubmitted form) is a no-op.
        """
        with self.sql.atomic():
            cursor = self.sql.execute(
                "INSERT INTO votes (profile, story_id, value, sources, terms, voted_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (profile, story_id) DO UPDATE SET "
                "value = excluded.value, sources = excluded.sources, terms = excluded.terms, "
                "voted_at = excluded.voted_at WHERE votes.value != excluded.value",
                [
                    vote.profile,
                    vote.story_id,
                    vote.value,
                    json.dumps(list(vote.sources)),
                    json.dumps(list(vote.terms)),
                    to_text(vote.voted_at),
                ],
            )
            return cursor.rowcount > 0

    def votes(self, profile: str) -> list[Vote]:
        """A profile's votes, oldest first (the order the ranking learns them in)."""
        rows = self.sql.execute(
            "SELECT story_id, value, sources, terms, voted_at FROM votes WHERE profile = ? "
            "ORDER BY voted_at, story_id",
            [profile],
        ).fetchall()
        return [
            Vote(
                profile=profile,
                story_id=story_id,
                value=value,
                sources=tuple(json.loads(sources)),
                terms=tuple(json.loads(terms)),
                voted_at=from_text(voted_at),
            )
            for story_id, value, sources, terms, voted_at in rows
        ]

    def vote_values(self, profile: str, story_ids: Sequence[str]) -> dict[str, int]:
        marks = ",".join("?" * len(story_ids)) or "NULL"
        rows = self.sql.execute(
            f"SELECT story_id, value FROM votes WHERE profile = ? AND story_id IN ({marks})",
            [profile, *story_ids],
        ).fetchall()
        return dict(rows)

    def search(
        self,
        query: str | None,
        *,
        sources: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[Hit]:
        """Stories whose items match `query` (FTS5 rank, best first) or, without one, the
        newest; within `sources` (None: all) and fetched in [since, until)."""
        if self.sql.dialect != "sqlite":
            # The Postgres schema has the index (items.search, a tsvector); the query is not
            # written yet (issue 16).
            raise StoreError(f"searching the store at {self.sql.location} needs SQLite for now")
        where: list[str] = ["1"]
        params: list[object] = []
        if since is not None:
            where.append("i.fetched >= ?")
            params.append(to_text(since))
        if until is not None:
            where.append("i.fetched < ?")
            params.append(to_text(until))
        if sources is not None:
            marks = ",".join("?" * len(sources)) or "NULL"
            where.append(
                f"EXISTS (SELECT 1 FROM item_sources s WHERE s.item_id = i.id "
                f"AND s.source IN ({marks}))"
            )
            params.extend(sources)
        match = fts_query(query or "")
        if match:
            # Ranked among the newest RANKED matches: FTS5 computes the rank of every row it
            # returns, and a common word matches a tenth of a million items; walking the
            # index newest first and stopping keeps a search under 100 ms at any size.
            found = (
                "SELECT * FROM (SELECT i.*, f.rank AS score FROM items_fts f "
                "JOIN items i ON i.rowid = f.rowid "
                f"WHERE items_fts MATCH ? AND {' AND '.join(where)} "
                "ORDER BY f.rowid DESC LIMIT ?) ORDER BY score LIMIT ?"
            )
            params = [match, *params, RANKED, limit * 8]
        else:
            found = (
                f"SELECT i.*, -julianday(i.fetched) AS score FROM items i "
                f"WHERE {' AND '.join(where)} ORDER BY i.fetched DESC LIMIT ?"
            )
            params = [*params, limit * 8]
        rows = self.sql.execute(
            # SQLite takes a bare column of a min() query from the row holding the minimum:
            # each story shows its best-matching item.
            "SELECT coalesce(story_id, id), title, url, published, fetched, count(*), "
            "(SELECT group_concat(source, char(31)) FROM item_sources s WHERE s.item_id = m.id), "
            f"min(score) FROM ({found}) m GROUP BY coalesce(story_id, id) ORDER BY min(score) "
            "LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [
            Hit(
                story_id=story_id,
                title=title,
                url=url,
                published=from_text(published),
                fetched=from_text(fetched),
                sources=tuple(sorted((names or "").split("\x1f"))),
                items=count,
            )
            for story_id, title, url, published, fetched, count, names, _ in rows
        ]

    def story_members(self, story_id: str, limit: int = 200) -> list[StoredItem]:
        """A story's items across outlets, oldest first."""
        items: list[StoredItem] = self._items(  # type: ignore[attr-defined]
            "i.id IN (SELECT id FROM items WHERE story_id = ? UNION SELECT ?) "
            f"ORDER BY i.fetched LIMIT {int(limit)}",
            [story_id, story_id],
        )
        return items

    def digest_story_ids(self, profile: str, digest_id: str, urls: Sequence[str]) -> list[str]:
        """The stories of a digest's items with these URLs (a trend's items)."""
        marks = ",".join("?" * len(urls)) or "NULL"
        rows = self.sql.execute(
            "SELECT DISTINCT coalesce(i.story_id, i.id) FROM items i "
            f"WHERE i.url IN ({marks}) AND EXISTS (SELECT 1 FROM digest_items d "
            "WHERE d.profile = ? AND d.item_id = i.id AND d.digest_id = ?)",
            [*urls, profile, digest_id],
        ).fetchall()
        return [row[0] for row in rows]

    def spend_per_day(self, since: datetime) -> list[tuple[str, float]]:
        """Model spend per UTC day since `since`, oldest first."""
        rows = self.sql.execute(
            "SELECT substr(started_at, 1, 10), sum(cost) FROM runs WHERE started_at >= ? "
            "GROUP BY 1 ORDER BY 1",
            [to_text(since)],
        ).fetchall()
        return [(day, float(cost)) for day, cost in rows]
