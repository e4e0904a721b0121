"""The store: migrations forward from any older version, de-duplication, and coverage."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.clock import to_text
from core.digest import Digest, DigestStats, TokenUsage, Window
from core.items import FetchOutcome, NewItem
from core.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError, StoreLocked

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def item(n: int, url: str | None = None, text: str = "body") -> NewItem:
    return NewItem(
        id=f"it_{n}",
        url=url or f"https://news.example/{n}",
        title=f"Story {n}",
        text=text,
        published=NOW - timedelta(hours=n),
        content_hash=f"hash-{n}-{text}",
    )


# The schema every store must reach, written out by hand (as simonw/llm's migration tests
# do) rather than read from MIGRATIONS, so a migration that builds the wrong thing fails.
# Per table: WITHOUT ROWID or not, then (name, type, not null, default, primary-key position)
# for each column; foreign keys as (column, table, column).
TEXT, INTEGER, REAL = "TEXT", "INTEGER", "REAL"
EXPECTED_TABLES = {
    "sources": (
        False,
        (
            ("name", TEXT, False, None, 1),
            ("kind", TEXT, True, None, 0),
            ("url", TEXT, True, None, 0),
            ("fetch_url", TEXT, True, None, 0),
            ("etag", TEXT, False, None, 0),
            ("last_modified", TEXT, False, None, 0),
            ("body_hash", TEXT, False, None, 0),
            ("last_attempt_at", TEXT, False, None, 0),
            ("last_success_at", TEXT, False, None, 0),
            ("next_fetch_at", TEXT, False, None, 0),
            ("failures", INTEGER, True, "0", 0),
            ("last_status", INTEGER, False, None, 0),
            ("last_error", TEXT, False, None, 0),
            ("disabled_reason", TEXT, False, None, 0),
            ("cursor", TEXT, False, None, 0),
        ),
    ),
    "items": (
        False,
        (
            ("id", TEXT, False, None, 1),
            ("url", TEXT, True, None, 0),
            ("title", TEXT, True, None, 0),
            ("text", TEXT, True, "''", 0),
            ("published", TEXT, True, None, 0),
            ("fetched", TEXT, True, None, 0),
            ("updated", TEXT, False, None, 0),
            ("content_hash", TEXT, True, None, 0),
            ("story_id", TEXT, False, None, 0),
        ),
    ),
    "item_sources": (
        True,
        (
            ("item_id", TEXT, True, None, 1),
            ("source", TEXT, True, None, 2),
            ("first_seen", TEXT, True, None, 0),
        ),
    ),
    "stories": (
        False,
        (
            ("id", TEXT, False, None, 1),
            ("title", TEXT, True, None, 0),
            ("first_seen", TEXT, True, None, 0),
            ("last_seen", TEXT, True, None, 0),
        ),
    ),
    "runs": (
        False,
        (
            ("id", INTEGER, False, None, 1),
            ("kind", TEXT, True, None, 0),
            ("started_at", TEXT, True, None, 0),
            ("finished_at", TEXT, False, None, 0),
            ("status", TEXT, True, None, 0),
            ("summary", TEXT, True, "'{}'", 0),
            ("errors", TEXT, True, "'[]'", 0),
            ("input_tokens", INTEGER, True, "0", 0),
            ("cached_tokens", INTEGER, True, "0", 0),
            ("reasoning_tokens", INTEGER, True, "0", 0),
            ("output_tokens", INTEGER, True, "0", 0),
            ("cost", REAL, True, "0", 0),
        ),
    ),
    "digests": (
        False,
        (
            ("id", TEXT, False, None, 1),
            ("profile", TEXT, True, None, 0),
            ("created_at", TEXT, True, None, 0),
            ("analyzer", TEXT, True, None, 0),
            ("window_from", TEXT, True, None, 0),
            ("window_to", TEXT, True, None, 0),
            ("body", TEXT, True, None, 0),
            ("input_tokens", INTEGER, True, "0", 0),
            ("cached_tokens", INTEGER, True, "0", 0),
            ("reasoning_tokens", INTEGER, True, "0", 0),
            ("output_tokens", INTEGER, True, "0", 0),
            ("cost", REAL, True, "0", 0),
            ("run_id", INTEGER, False, None, 0),
            ("kind", TEXT, True, "'digest'", 0),
        ),
    ),
    "digest_items": (
        True,
        (
            ("profile", TEXT, True, None, 1),
            ("item_id", TEXT, True, None, 2),
            ("digest_id", TEXT, True, None, 0),
            ("role", TEXT, True, None, 0),
        ),
    ),
    "deliveries": (
        False,
        (
            ("id", INTEGER, False, None, 1),
            ("digest_id", TEXT, True, None, 0),
            ("target", TEXT, True, None, 0),
            ("status", TEXT, True, None, 0),
            ("attempts", INTEGER, True, "0", 0),
            ("last_error", TEXT, False, None, 0),
            ("next_attempt_at", TEXT, True, None, 0),
            ("sent_at", TEXT, False, None, 0),
            ("last_attempt_at", TEXT, False, None, 0),
            ("parts_sent", INTEGER, True, "0", 0),
        ),
    ),
    "site_links": (
        True,
        (
            ("source", TEXT, True, None, 1),
            ("url", TEXT, True, None, 2),
            ("first_seen", TEXT, True, None, 0),
            ("last_seen", TEXT, True, None, 0),
        ),
    ),
    "engagement": (
        True,
        (
            ("item_id", TEXT, True, None, 1),
            ("source", TEXT, True, None, 2),
            ("seen_at", TEXT, True, None, 3),
            ("author", TEXT, True, None, 0),
            ("likes", INTEGER, True, None, 0),
            ("reposts", INTEGER, True, None, 0),
            ("comments", INTEGER, True, None, 0),
            ("views", INTEGER, False, None, 0),
        ),
    ),
    # Full-text search over items (FTS5 with external content, so only its index tables).
    "items_fts": (False, (("title", "", False, None, 0), ("text", "", False, None, 0))),
    "items_fts_data": (False, (("id", INTEGER, False, None, 1), ("block", "BLOB", False, None, 0))),
    "items_fts_idx": (
        True,
        (("segid", "", True, None, 1), ("term", "", True, None, 2), ("pgno", "", False, None, 0)),
    ),
    "items_fts_docsize": (False, (("id", INTEGER, False, None, 1), ("sz", "BLOB", False, None, 0))),
    "items_fts_config": (True, (("k", "", True, None, 1), ("v", "", False, None, 0))),
    "votes": (
        True,
        (
            ("profile", TEXT, True, None, 1),
            ("story_id", TEXT, True, None, 2),
            ("value", INTEGER, True, None, 0),
            ("sources", TEXT, True, "'[]'", 0),
            ("terms", TEXT, True, "'[]'", 0),
            ("voted_at", TEXT, True, None, 0),
        ),
    ),
    "alerts": (
        False,
        (
            ("id", INTEGER, False, None, 1),
            ("profile", TEXT, True, None, 0),
            ("subject", TEXT, True, None, 0),
            ("rule", TEXT, True, None, 0),
            ("size", INTEGER, True, None, 0),
            ("fired_at", TEXT, True, None, 0),
            ("digest_id", TEXT, True, None, 0),
        ),
    ),
    "baselines": (
        False,
        (
            ("name", TEXT, False, None, 1),
            ("state", "BLOB", True, None, 0),
            ("updated_at", TEXT, True, None, 0),
        ),
    ),
    "jobs": (
        False,
        (
            ("id", INTEGER, False, None, 1),
            ("kind", TEXT, True, None, 0),
            ("key", TEXT, True, None, 0),
            ("due_at", TEXT, True, None, 0),
            ("claimed_by", TEXT, False, None, 0),
            ("claim", TEXT, False, None, 0),
            ("lease_until", TEXT, False, None, 0),
            ("attempts", INTEGER, True, "0", 0),
        ),
    ),
    "host_slots": (
        True,
        (
            ("host", TEXT, True, None, 1),
            ("slot", INTEGER, True, None, 2),
            ("claimed_by", TEXT, False, None, 0),
            ("lease_until", TEXT, False, None, 0),
        ),
    ),
    "workers": (
        True,
        (
            ("name", TEXT, True, None, 1),
            ("role", TEXT, True, None, 0),
            ("started_at", TEXT, True, None, 0),
            ("heartbeat_at", TEXT, True, None, 0),
        ),
    ),
}

EXPECTED_FOREIGN_KEYS = {
    "item_sources": {("item_id", "items", "id")},
    "digests": {("run_id", "runs", "id")},
    "digest_items": {("item_id", "items", "id"), ("digest_id", "digests", "id")},
    "deliveries": {("digest_id", "digests", "id")},
    "engagement": {("item_id", "items", "id")},
    "alerts": {("digest_id", "digests", "id")},
}
# Index name: (table, columns, unique, the WHERE of a partial index).
EXPECTED_INDEXES = {
    "items_fetched": ("items", ("fetched",), False, None),
    "items_story_members": ("items", ("story_id", "id", "published"), False, None),
    "items_ungrouped": ("items", ("fetched",), False, "story_id IS NULL"),
    "item_sources_by_source": ("item_sources", ("source", "first_seen", "item_id"), False, None),
    "runs_by_kind": ("runs", ("kind", "started_at"), False, None),
    "digests_by_profile": ("digests", ("profile", "created_at"), False, None),
    "digest_items_by_digest": ("digest_items", ("digest_id",), False, None),
    "deliveries_due": ("deliveries", ("status", "next_attempt_at"), False, None),
    "site_links_recent": ("site_links", ("source", "last_seen"), False, None),
    "engagement_by_source": ("engagement", ("source", "seen_at"), False, None),
    "votes_by_time": ("votes", ("profile", "voted_at"), False, None),
    "items_by_url": ("items", ("url",), False, None),
    "alerts_by_profile": ("alerts", ("profile", "fired_at"), False, None),
    "alerts_by_subject": ("alerts", ("profile", "subject", "fired_at"), False, None),
    "jobs_due": ("jobs", ("kind", "due_at"), False, None),
}


def schema(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The store's tables, foreign keys and named indexes, in EXPECTED_*'s shape."""
    conn = sqlite3.connect(path)
    try:
        tables, keys, indexes = {}, {}, {}
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ):
            columns = conn.execute(f"PRAGMA table_info({name})").fetchall()
            tables[name] = (
                "WITHOUT ROWID" in sql.upper(),
                tuple((c[1], c[2], bool(c[3]), c[4], c[5]) for c in columns),
            )
            found = conn.execute(f"PRAGMA foreign_key_list({name})").fetchall()
            if found:
                keys[name] = {(key[3], key[2], key[4]) for key in found}
        for name, table, sql in conn.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ):
            columns = tuple(c[2] for c in conn.execute(f"PRAGMA index_info({name})"))
            unique = {row[1]: bool(row[2]) for row in conn.execute(f"PRAGMA index_list({table})")}
            where = " ".join(sql.split(" WHERE ", 1)[1].split()) if " WHERE " in sql else None
            indexes[name] = (table, columns, unique[name], where)
        return tables, keys, indexes
    finally:
        conn.close()


def test_a_new_store_is_at_the_current_schema_in_wal_mode(tmp_path):
    with Store.open(tmp_path / "t.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # FULL: a commit (a delivery marked sent) survives a power cut, not only a crash.
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize("version", range(SCHEMA_VERSION + 1))
def test_a_store_from_any_older_version_migrates_and_keeps_its_data(tmp_path, version):
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        for number, script in enumerate(MIGRATIONS[:version], start=1):
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {number}")
        if version >= 1:
            conn.execute(
                "INSERT INTO sources (name, kind, url, fetch_url) VALUES ('s', 'feed', 'u', 'u')"
            )
            conn.execute(
                "INSERT INTO items (id, url, title, published, fetched, content_hash) "
                "VALUES ('it_1', 'https://e.x/1', 'T', ?, ?, 'h')",
                ["2026-11-27T12:00:00.000000Z"] * 2,
            )
            conn.execute(
                "INSERT INTO item_sources (item_id, source, first_seen) VALUES ('it_1', 's', ?)",
                ["2026-11-27T12:00:00.000000Z"],
            )
    with Store.open(old) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if version >= 1:
            assert [s.name for s in store.source_states()] == ["s"]
            assert [item.sources for item in store.items_by_id(["it_1"])] == [("s",)]
    assert schema(old) == (EXPECTED_TABLES, EXPECTED_FOREIGN_KEYS, EXPECTED_INDEXES)


def test_a_store_from_a_newer_trendfinder_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this trendfinder"):
        Store.open(path)


def test_an_unusable_file_is_a_store_error_naming_the_path(tmp_path):
    path = tmp_path / "t.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store.open(path)


def test_a_store_error_while_in_use_names_the_file_and_a_lock_held_too_long_is_store_locked(
    tmp_path,
):
    path = tmp_path / "t.db"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than we wait
    try:
        with (
            pytest.raises(StoreLocked, match=f"the store at {path} is locked"),
            Store.open(path, busy_timeout=0.1) as store,
        ):
            store.start_run("collect", NOW)
    finally:
        holder.close()
    with (
        pytest.raises(StoreError, match=f"cannot use the store at {path}: no such table"),
        Store.open(path) as store,
    ):
        store.db.execute("SELECT * FROM no_such_table")


def test_items_are_stored_once_updated_in_place_and_shared_between_sources(open_store):
    with open_store() as store:
        store.sync_sources([("a", "feed", "u1"), ("b", "feed", "u2")])
        assert store.add_items("a", [item(1), item(2)], NOW).new == 2
        again = store.add_items("a", [item(1), item(2, text="corrected")], NOW)
        assert (again.new, again.updated, again.seen) == (0, 1, 1)
        from_b = store.add_items("b", [item(1)], NOW)
        assert from_b.new == 0
        [shared] = store.items_by_id(["it_1"])
        assert shared.sources == ("a", "b")
        [updated] = store.items_by_id(["it_2"])
        assert updated.text == "corrected"


def test_the_search_index_holds_every_stored_item_as_it_now_reads(tmp_path):
    """New items enter the index in one statement per source (no per-row trigger since
    migration 9), corrected ones are re-indexed, and an item seen again is not indexed twice."""
    with Store.open(tmp_path / "t.db") as store:
        store.sync_sources([("a", "feed", "u1"), ("b", "feed", "u2")])
        store.add_items("a", [item(1), item(2, text="quarterly figures")], NOW)
        store.add_items("a", [item(2, text="annual figures"), item(3)], NOW)
        store.add_items("b", [item(1), item(4, text="quarterly outlook")], NOW)

        def found(word: str) -> list[str]:
            rows = store.db.execute(
                "SELECT i.id FROM items_fts f JOIN items i ON i.rowid = f.rowid "
                "WHERE items_fts MATCH ? ORDER BY i.id",
                [word],
            )
            return [row[0] for row in rows]

        assert found("quarterly") == ["it_4"]
        assert found("annual") == ["it_2"]
        assert found("story") == ["it_1", "it_2", "it_3", "it_4"]
        store.db.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")


def test_pending_items_exclude_what_a_digest_of_that_profile_covered(open_store):
    with open_store() as store:
        store.sync_sources([("a", "feed", "u1")])
        store.add_items("a", [item(1), item(2), item(3)], NOW)
        since = NOW - timedelta(days=1)
        assert len(store.pending_items("daily", ["a"], since)) == 3
        digest = Digest(
            id="daily-1",
            profile="daily",
            created_at=NOW,
            analyzer="offline",
            window=Window(from_=since, to=NOW),
            trends=(),
            stats=DigestStats(items=2, sources=1),
        )
        store.save_digest(digest, {"it_1": "cited", "it_2": "considered"}, ["file"], TokenUsage())
        assert [i.id for i in store.pending_items("daily", ["a"], since)] == ["it_3"]
        assert len(store.pending_items("weekly", ["a"], since)) == 3
        assert store.count_pending("daily", ["a"], since) == 1
        [delivery] = store.deliveries_due(NOW)
        assert (delivery.digest_id, delivery.target, delivery.status) == (
            "daily-1",
            "file",
            "pending",
        )
        assert store.digest("daily-1") == digest


def test_fetch_state_records_failures_and_resets_on_success(open_store):
    with open_store() as store:
        store.sync_sources([("a", "feed", "u1")])
        failed = FetchOutcome(source="a", status="error", error="HTTP 500", http_status=500)
        store.record_fetch(failed, NOW, NOW + timedelta(minutes=5))
        store.record_fetch(failed, NOW, NOW + timedelta(minutes=10))
        state = store.source_state("a")
        assert (state.failures, state.last_error) == (2, "HTTP 500")
        ok = FetchOutcome(source="a", status="ok", etag='"v1"', http_status=200)
        store.record_fetch(ok, NOW, NOW + timedelta(minutes=30))
        state = store.source_state("a")
        assert (state.failures, state.last_error, state.etag) == (0, None, '"v1"')


def test_merged_stories_are_relabelled_and_a_cited_story_still_counts_as_reported(open_store):
    with open_store() as store:
        store.sync_sources([("a", "feed", "u1")])
        store.add_items("a", [item(1), item(2), item(3)], NOW)
        monday, tuesday = NOW - timedelta(days=1), NOW
        store.assign_stories({"it_1": "st_old"}, {}, monday)
        store.assign_stories({"it_2": "st_young"}, {}, tuesday)
        digest = Digest(
            id="daily-1",
            profile="daily",
            created_at=tuesday,
            analyzer="offline",
            window=Window(from_=monday, to=tuesday),
            trends=(),
            stats=DigestStats(items=1, sources=1),
        )
        store.save_digest(digest, {"it_2": "cited"}, ["file"], TokenUsage())
        assert store.reported_story_sources("daily", monday) == {"st_young": frozenset({"a"})}

        store.assign_stories({"it_3": "st_old"}, {"st_young": "st_old"}, NOW + timedelta(hours=1))
        assert {i.id: i.story_id for i in store.items_by_id(["it_1", "it_2", "it_3"])} == {
            "it_1": "st_old",
            "it_2": "st_old",
            "it_3": "st_old",
        }
        assert store.reported_story_sources("daily", monday) == {"st_old": frozenset({"a"})}
        rows = store.sql.execute("SELECT id, first_seen, last_seen FROM stories").fetchall()
        assert [tuple(row) for row in rows] == [
            ("st_old", to_text(monday), to_text(NOW + timedelta(hours=1)))
        ]


def test_items_for_grouping_can_come_with_only_the_start_of_their_text(open_store):
    with open_store() as store:
        with store.transaction():
            store.add_items("s", [item(1, text="x" * 5000), item(2, text="short")], NOW)
        assert sorted(len(i.text) for i in store.ungrouped_items(600)) == [5, 600]
        assert sorted(len(i.text) for i in store.ungrouped_items()) == [5, 5000]
        store.assign_stories({"it_1": "st_a", "it_2": "st_b"}, {}, NOW)
        anchors = store.grouped_items_since(NOW - timedelta(days=1), 600)
        assert {(i.id, len(i.text), i.story_id) for i in anchors} == {
            ("it_1", 600, "st_a"),
            ("it_2", 5, "st_b"),
        }
        store.add_items("s", [item(3)], NOW + timedelta(minutes=1))
        store.assign_stories({"it_3": "st_a"}, {}, NOW)
        latest = store.grouped_items_since(NOW - timedelta(days=1), limit=2)
        assert [i.id for i in latest] == ["it_2", "it_3"]
