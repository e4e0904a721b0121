"""What the web app reads and writes: readers' votes, full-text search, a story's items, spend."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.clock import from_text, to_text
from core.items import StoredItem
from core.store.sql import Sql, chunks
from core.votes import Vote

# FTS5 and tsquery syntax are not for readers: each word becomes a quoted term.
_QUERY_WORD = re.compile(r"\w+", re.UNICODE)


# How many of the newest matching items a search ranks.
RANKED = 2000
# A search within this many sources or fewer (a share of a stream of dozens) ranks the matches
# among those sources' newest RANKED items instead: walking the whole index newest first
# would check a source's membership for ~50 rows per row kept, a second at a million items.
NARROW = 3
# What a hit shows, without the items' texts, which a search need not carry along.
_HIT_COLUMNS = "i.id, i.story_id, i.title, i.url, i.published, i.fetched"


@dataclass(frozen=True)
class SourceEngagement:
    items: int
    likes: int
    reposts: int
    comments: int


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
    """A reader's words as an FTS5 query that cannot be a syntax error; None when empty.

    Whole words, not prefixes: FTS5 merges a prefix's whole doclist before it returns a row
    (a common word's prefix query took 116 ms at a million items, the word itself 42 ms).
    The index holds stems (migration 12), so "storm" still finds "storms"."""
    words = _QUERY_WORD.findall(text)[:12]
    return " ".join(f'"{word}"' for word in words) or None


def _fetched_within(
    since: datetime | None, until: datetime | None
) -> tuple[list[str], list[object]]:
    """A search's conditions on when its items were fetched, [since, until), and their
    parameters, for either backend."""
    where: list[str] = []
    params: list[object] = []
    if since is not None:
        where.append("i.fetched >= ?")
        params.append(to_text(since))
    if until is not None:
        where.append("i.fetched < ?")
        params.append(to_text(until))
    return where, params


# A search within some sources: an item any of them carried.
_FROM_SOURCES = (
    "EXISTS (SELECT 1 FROM item_sources s WHERE s.item_id = i.id AND s.source IN ({marks}))"
)


def _hit(
    story_id: str, title: str, url: str, published: str, fetched: str, count: int, names: str
) -> Hit:
    return Hit(
        story_id=story_id,
        title=title,
        url=url,
        published=from_text(published),
        fetched=from_text(fetched),
        sources=tuple(sorted((names or "").split("\x1f"))),
        items=count,
    )


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
            return self._search_postgres(query, sources, since, until, limit)
        window, params = _fetched_within(since, until)
        where = ["1", *window]
        marks = ",".join("?" * len(sources or ())) or "NULL"
        match = fts_query(query or "")
        narrow = match and sources is not None and len(sources) <= NARROW and until is None
        if sources is not None and not narrow:
            where.append(_FROM_SOURCES.format(marks=marks))
            params.extend(sources)
        if narrow:
            # The sources' newest items (their index), then only those rows of the FTS
            # index: a rowid range it seeks to, and a membership test in a small set.
            found = (
                "WITH mine(r) AS MATERIALIZED (SELECT i.rowid FROM (SELECT item_id FROM "
                f"item_sources WHERE source IN ({marks}) ORDER BY first_seen DESC LIMIT ?) s "
                "JOIN items i ON i.id = s.item_id) "
                # Ordered by rowid inside, by rank outside: ORDER BY rank alone has FTS5
                # rank every match in the rowid range before the membership test (148 ms).
                f"SELECT * FROM (SELECT {_HIT_COLUMNS}, f.rank AS score FROM items_fts f "
                "JOIN items i ON i.rowid = f.rowid "
                "WHERE items_fts MATCH ? AND f.rowid >= (SELECT min(r) FROM mine) "
                f"AND +f.rowid IN (SELECT r FROM mine) AND {' AND '.join(where)} "
                "ORDER BY f.rowid DESC LIMIT ?) ORDER BY score LIMIT ?"
            )
            params = [*(sources or ()), RANKED, match, *params, RANKED, limit * 8]
        elif match:
            # Ranked among the newest RANKED matches: FTS5 computes the rank of every row it
            # returns, and a common word matches a tenth of a million items; walking the
            # index newest first and stopping keeps a search under 100 ms at any size.
            found = (
                f"SELECT * FROM (SELECT {_HIT_COLUMNS}, f.rank AS score FROM items_fts f "
                "JOIN items i ON i.rowid = f.rowid "
                f"WHERE items_fts MATCH ? AND {' AND '.join(where)} "
                "ORDER BY f.rowid DESC LIMIT ?) ORDER BY score LIMIT ?"
            )
            params = [match, *params, RANKED, limit * 8]
        else:
            found = (
                f"SELECT {_HIT_COLUMNS}, -julianday(i.fetched) AS score FROM items i "
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
        return [_hit(*row[:7]) for row in rows]

    def _search_postgres(
        self,
        query: str | None,
        sources: Sequence[str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[Hit]:
        """search() on Postgres: the generated tsvector column (items.search, a GIN index)
        matched by the stems of the reader's words, as on SQLite, ranked by ts_rank; each
        story led by its best-matching item (a window, where SQLite takes a bare column of
        min())."""
        window, params = _fetched_within(since, until)
        where = ["TRUE", *window]
        words = _QUERY_WORD.findall(query or "")[:12]
        if words:
            # Each word a quoted lexeme, so no reader's text is tsquery syntax.
            lexemes = " & ".join("'" + word.replace("'", "''") + "'" for word in words)
            where.append("i.search @@ to_tsquery('trendfinder', ?)")
            params.append(lexemes)
            score = "-ts_rank(i.search, to_tsquery('trendfinder', ?))"
            score_params: list[object] = [lexemes]
        else:
            score, score_params = "-extract(epoch FROM i.fetched::timestamptz)", []
        if sources is not None:
            marks = ",".join("?" * len(sources)) or "NULL"
            where.append(_FROM_SOURCES.format(marks=marks))
            params.extend(sources)
        rows = self.sql.execute(
            "SELECT story, title, url, published, fetched, n, "
            "(SELECT string_agg(source, chr(31)) FROM item_sources s WHERE s.item_id = x.id) "
            "FROM (SELECT m.*, coalesce(story_id, id) AS story, "
            "count(*) OVER (PARTITION BY coalesce(story_id, id)) AS n, "
            "row_number() OVER (PARTITION BY coalesce(story_id, id) ORDER BY score, id) AS nth "
            f"FROM (SELECT {_HIT_COLUMNS}, {score} AS score FROM items i "
            f"WHERE {' AND '.join(where)} ORDER BY score LIMIT ?) m) x "
            "WHERE nth = 1 ORDER BY score LIMIT ?",
            [*score_params, *params, limit * 8, limit],
        ).fetchall()
        return [_hit(*row) for row in rows]

    def preview_key(self, profile: str) -> tuple[object, ...]:
        """What a dry run of the profile's next digest reads, as far as it changes: the newest
        item, the latest run (grouping, a digest), and the profile's votes; equal keys, equal
        previews (but for items ageing out of the window)."""
        # SQLite's rowid is the insertion order; Postgres has none, and the newest fetch
        # time stands in for it there.
        newest = "max(rowid)" if self.sql.dialect == "sqlite" else "max(fetched)"
        row = self.sql.execute(
            f"SELECT (SELECT {newest} FROM items), (SELECT max(id) FROM runs), "
            "(SELECT count(*) || ' ' || coalesce(max(voted_at), '') FROM votes WHERE profile = ?)",
            [profile],
        ).fetchone()
        return tuple(row)

    def reported_stories(
        self, story_ids: Sequence[str], profiles: Sequence[str], since: datetime
    ) -> set[str]:
        """Which of these stories a digest of these profiles cited since `since` (read from
        the stories' own items, so a page asks about a few stories cheaply)."""
        found: set[str] = set()
        names = list(profiles)
        for chunk in chunks(story_ids):
            rows = self.sql.execute(
                # CROSS JOIN keeps SQLite's order: the stories' items first (few), then
                # their digest rows by key, never the other way round (most items are cited).
                "SELECT DISTINCT i.story_id FROM items i "
                "CROSS JOIN digest_items d ON d.item_id = i.id AND d.role = 'cited' "
                "CROSS JOIN digests g ON g.id = d.digest_id "
                f"WHERE i.story_id IN ({','.join('?' * len(chunk))}) "
                f"AND d.profile IN ({','.join('?' * len(names)) or 'NULL'}) AND g.created_at >= ?",
                [*chunk, *names, to_text(since)],
            ).fetchall()
            found.update(story for (story,) in rows)
        return found

    def engagement_per_source(
        self, sources: Sequence[str], since: datetime
    ) -> dict[str, SourceEngagement]:
        """Each source's items seen since `since` with engagement, and their likes, reposts and
        comments summed (each item counted at its highest reading)."""
        if not sources:
            return {}
        marks = ",".join("?" * len(sources))
        rows = self.sql.execute(
            "SELECT source, count(*), sum(likes), sum(reposts), sum(comments) FROM ("
            "SELECT source, item_id, max(likes) AS likes, max(reposts) AS reposts, "
            "max(comments) AS comments FROM engagement "
            f"WHERE source IN ({marks}) AND seen_at >= ? GROUP BY source, item_id) "
            "GROUP BY source",
            [*sources, to_text(since)],
        ).fetchall()
        return {source: SourceEngagement(*numbers) for source, *numbers in rows}

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
