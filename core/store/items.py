"""Items, the sources that brought them, and the stories they are grouped into.

The reads here are raw SQL on purpose: each is one indexed query (joins, NOT EXISTS,
group_concat) that sqlite-utils' table API cannot express, and they are the hot path
(tests/bench/bench_store.py times them on a million items). The SQL is SQLite's and
Postgres's common ground; the few words that differ come from `Sql` (core/store/sql.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import from_text, to_text
from core.items import NewItem, StoredItem
from core.store.sql import Sql, chunks

# A LIMIT that is no limit: both dialects take a number (SQLite refuses NULL, Postgres -1).
UNLIMITED = 1 << 62


@dataclass(frozen=True)
class AddedItems:
    new: int
    updated: int
    seen: int


@dataclass(frozen=True)
class SourceItems:
    """One source's items, as a fetch of it at `fetched` brought them."""

    source: str
    items: Sequence[NewItem]
    fetched: datetime


class ItemTables:
    sql: Sql

    def add_items(self, source: str, items: Sequence[NewItem], now: datetime) -> AddedItems:
        """Store a source's items: new ones inserted, changed ones updated, all linked to it.

        An item already stored (by id) is not new again, even from another source; it only
        gains that source. A changed content hash is an update, not a new item.
        """
        return self.add_sources_items([SourceItems(source, items, now)])[0]

    def add_sources_items(self, batch: Sequence[SourceItems]) -> list[AddedItems]:
        """add_items for several sources at once, in order (each source sees the items of
        those before it as stored), in one transaction: what each one added.

        A cycle's sources are written this way: a statement per table for the whole batch
        instead of per source, and above all one insert into the search index, which FTS5
        flushes into a segment of its own at every savepoint (300 sources one by one cost
        the index 0.52 CPU-s, in 3 batches 0.35)."""
        ids = list(dict.fromkeys(item.id for fetch in batch for item in fetch.items))
        if not ids:  # unchanged feeds: nothing to write
            return [AddedItems(new=0, updated=0, seen=0) for _ in batch]
        known: dict[str, str] = {}
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows = self.sql.execute(
                f"SELECT id, content_hash FROM items WHERE id IN ({marks})", chunk
            )
            known.update((id, content_hash) for id, content_hash in rows)
        fresh: list[tuple[NewItem, str]] = []  # each with its fetch's time
        changed: list[tuple[NewItem, str]] = []
        links: list[tuple[str, str, str]] = []
        added = []
        for fetch in batch:
            items, stamp = fetch.items, to_text(fetch.fetched)
            new = [item for item in items if item.id not in known]
            updated = [
                item for item in items if known.get(item.id, item.content_hash) != item.content_hash
            ]
            # As the rows will be once the statements below run: the first insert of an id
            # wins (ON CONFLICT DO NOTHING), the last update does.
            for item in new:
                known.setdefault(item.id, item.content_hash)
            known.update((item.id, item.content_hash) for item in updated)
            fresh += [(item, stamp) for item in new]
            changed += [(item, stamp) for item in updated]
            links += [(item.id, fetch.source, stamp) for item in items]
            added.append(
                AddedItems(
                    new=len(new), updated=len(updated), seen=len(items) - len(new) - len(updated)
                )
            )
        with self.sql.atomic():
            indexed = self._last_rowid() if fresh else None
            # executemany, not Table.insert_all: a poll brings items by the thousand, and
            # insert_all's per-value conversion made this 2.4 times slower (2,000 new items,
            # as tests/bench/bench_store.py adds them: 231 ms against 95 ms).
            self.sql.executemany(
                "INSERT INTO items (id, url, title, text, published, fetched, "
                "content_hash) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
                    for item, stamp in fresh
                ],
            )
            if indexed is not None:
                # The rows just inserted, into the search index in one statement (migration
                # 9 dropped the per-row trigger, which cost twice the CPU); before the
                # updates, whose trigger replaces what the index holds for their rows.
                self.sql.execute(
                    "INSERT INTO items_fts (rowid, title, text) "
                    "SELECT rowid, title, text FROM items WHERE rowid > ?",
                    [indexed],
                )
            self.sql.executemany(
                "UPDATE items SET title = ?, text = ?, content_hash = ?, updated = ? WHERE id = ?",
                [
                    (item.title, item.text, item.content_hash, stamp, item.id)
                    for item, stamp in changed
                ],
            )
            self.sql.executemany(
                "INSERT INTO item_sources (item_id, source, first_seen) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                links,
            )
        return added

    def _last_rowid(self) -> int | None:
        """SQLite's largest items rowid (0 when empty): rows inserted after it are new. None on
        Postgres, whose search column the server keeps."""
        if self.sql.dialect != "sqlite":
            return None
        return int(next(iter(self.sql.execute("SELECT coalesce(max(rowid), 0) FROM items")))[0])

    def _items(
        self, where: str, params: Sequence[Any], text_chars: int | None = None
    ) -> list[StoredItem]:
        text = "i.text" if text_chars is None else f"substr(i.text, 1, {int(text_chars)})"
        rows = self.sql.execute(
            f"SELECT i.id, i.url, i.title, {text}, i.published, i.fetched, i.story_id, "
            f"(SELECT {self.sql.joined('source')} FROM item_sources s "
            f"WHERE s.item_id = i.id) FROM items i WHERE {where}",
            params,
        )
        return [_stored_item(*row) for row in rows]

    def items_by_id(self, ids: Sequence[str]) -> list[StoredItem]:
        found: list[StoredItem] = []
        for chunk in chunks(ids):
            found += self._items(f"i.id IN ({','.join('?' * len(chunk))})", chunk)
        return found

    def ungrouped_items(
        self, text_chars: int | None = None, limit: int | None = None
    ) -> list[StoredItem]:
        """Items not in a story yet, the first fetched first; with `text_chars`, each text cut
        to its first characters; with `limit`, only that many."""
        return self._items(
            "i.story_id IS NULL ORDER BY i.fetched, i.id LIMIT ?",
            [UNLIMITED if limit is None else limit],
            text_chars,
        )

    def grouped_items_since(
        self, since: datetime, text_chars: int | None = None, limit: int | None = None
    ) -> list[StoredItem]:
        """Recently grouped items: the anchors that let new items join existing stories.
        With `text_chars`, each text is cut to its first characters; with `limit`, only the
        latest items (by fetch time, then id) come back."""
        return self._items(
            "i.id IN (SELECT id FROM items WHERE story_id IS NOT NULL AND fetched >= ? "
            "ORDER BY fetched DESC, id DESC LIMIT ?) ORDER BY i.fetched, i.id",
            [to_text(since), UNLIMITED if limit is None else limit],
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
        # Raw SQL: set-based updates (a whole story relabelled, a story's span widened from
        # another row); Table.update would read each of ten thousand rows back first.
        first = self.sql.least(
            "first_seen", "coalesce((SELECT first_seen FROM stories WHERE id = :old), first_seen)"
        )
        last = self.sql.greatest(
            "last_seen", "coalesce((SELECT last_seen FROM stories WHERE id = :old), last_seen)"
        )
        with self.sql.atomic():
            for old, survivor in merged.items():
                self.sql.execute(
                    "UPDATE items SET story_id = ? WHERE story_id = ?", [survivor, old]
                )
                self.sql.execute(
                    f"UPDATE stories SET first_seen = {first}, last_seen = {last} "
                    "WHERE id = :survivor",
                    {"old": old, "survivor": survivor},
                )
                self.sql.execute("DELETE FROM stories WHERE id = ?", [old])
            for item_id, story_id in stories.items():
                self.sql.execute("UPDATE items SET story_id = ? WHERE id = ?", [story_id, item_id])
                self.sql.execute(
                    "INSERT INTO stories (id, title, first_seen, last_seen) "
                    "SELECT ?, title, ?, ? FROM items WHERE id = ? "
                    "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
                    [story_id, stamp, stamp, item_id],
                )

    # Story splits (issue #11) ---------------------------------------------------------------

    def move_items(self, moved: Mapping[str, str], now: datetime) -> None:
        """Record a story split: `moved` maps items to the story they now belong to, an
        existing story or a new one (created with the item's title, first seen when its
        earliest moved item was fetched). One transaction, so a story an earlier digest cited
        keeps the items still in it and the moved items count as reported under their new
        story (`reported_story_sources` follows each item's story)."""
        stamp = to_text(now)
        # Raw SQL, as in assign_stories: an upsert that widens the story's span.
        first = self.sql.least("stories.first_seen", "excluded.first_seen")
        with self.sql.atomic():
            for item_id, story_id in sorted(moved.items()):
                self.sql.execute("UPDATE items SET story_id = ? WHERE id = ?", [story_id, item_id])
                self.sql.execute(
                    "INSERT INTO stories (id, title, first_seen, last_seen) "
                    "SELECT ?, title, fetched, ? FROM items WHERE id = ? "
                    f"ON CONFLICT (id) DO UPDATE SET first_seen = {first}, last_seen = ?",
                    [story_id, stamp, item_id, stamp],
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
        row = self.sql.execute(
            "SELECT count(DISTINCT s.item_id) FROM item_sources s "
            f"WHERE s.source IN ({marks}) AND s.first_seen >= ? AND NOT EXISTS "
            "(SELECT 1 FROM digest_items d WHERE d.profile = ? AND d.item_id = s.item_id)",
            [*sources, to_text(since), profile],
        ).fetchone()
        return int(row[0])

    def reported_story_sources(self, profile: str, since: datetime) -> dict[str, frozenset[str]]:
        """Stories cited by the profile's digests since `since`, each with the sources cited."""
        rows = self.sql.execute(
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
        rows = self.sql.execute(
            f"SELECT source, count(*) FROM item_sources WHERE source IN ({marks}) "
            "AND first_seen >= ? AND first_seen < ? GROUP BY source",
            [*sources, to_text(since), to_text(until)],
        ).fetchall()
        return {source: int(count) for source, count in rows}


def _stored_item(
    id: str,
    url: str,
    title: str,
    text: str,
    published: str,
    fetched: str,
    story_id: str | None,
    source_names: str | None,
) -> StoredItem:
    # By position, not through rows.from_row: this maps every item of a grouping run.
    return StoredItem(
        id=id,
        url=url,
        title=title,
        text=text,
        published=from_text(published),
        fetched=from_text(fetched),
        sources=tuple(sorted(source_names.split("\x1f"))) if source_names else (),
        story_id=story_id,
    )
