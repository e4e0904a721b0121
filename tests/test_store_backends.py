"""Every domain of the store behaves the same on SQLite and on Postgres (a real server the
session starts), and what is Postgres's own: its schema, its migrations, its errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO_ROOT, StoreOpener
from test_store import EXPECTED_FOREIGN_KEYS, EXPECTED_INDEXES, EXPECTED_TABLES, item

from core.clock import to_text
from core.config import StorageConfig, parse_config
from core.digest import Digest, DigestStats, TokenUsage, Window
from core.errors import ConfigError, UsageError
from core.items import Engagement, FetchOutcome
from core.store import (
    SCHEMA_VERSION,
    AlertRecord,
    Store,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreNeedsMigration,
)
from core.store.migrations import postgres_script
from core.votes import Vote

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def digest(digest_id: str, profile: str = "daily", kind: str = "digest") -> Digest:
    return Digest(
        id=digest_id,
        profile=profile,
        kind=kind,  # type: ignore[arg-type]
        created_at=NOW,
        analyzer="offline",
        window=Window(from_=NOW - DAY, to=NOW),
        trends=(),
        stats=DigestStats(items=1, sources=1),
    )


# Both backends -------------------------------------------------------------------------


def test_the_outbox_marks_each_attempt_and_a_sent_delivery_is_not_due_again(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.add_items("a", [item(1)], NOW)
        store.save_digest(digest("d1"), {"it_1": "cited"}, ["mail", "slack"], TokenUsage())
        mail, slack = store.deliveries_due(NOW)
        store.start_delivery_attempt(mail.id, NOW)
        store.record_delivery_sent(mail.id, NOW)
        store.start_delivery_attempt(slack.id, NOW)
        store.record_delivery_progress(slack.id, 2)
        store.record_delivery_failed(slack.id, "HTTP 503", NOW + timedelta(minutes=5))
    with open_store() as store:  # what another process sees
        assert store.deliveries_due(NOW) == []
        [again] = store.deliveries_due(NOW + timedelta(minutes=5))
        assert (again.target, again.attempts, again.parts_sent, again.last_error) == (
            "slack",
            1,
            2,
            "HTTP 503",
        )
        assert store.delivery(mail.id).status == "sent"
        assert [d.target for d in store.deliveries("sent")] == ["mail"]
        store.record_delivery_failed(slack.id, "HTTP 503", None)
        store.requeue_delivery(slack.id, NOW)
        assert store.delivery(slack.id).status == "pending"
        assert store.digest_summaries("daily")[0].id == "d1"
        assert store.has_digest("d1") and not store.has_digest("d2")
        assert store.last_digest("daily") == digest("d1")


def test_runs_record_their_spend_and_abandoned_runs_are_closed(open_store: StoreOpener) -> None:
    with open_store() as store:
        first = store.start_run("collect", NOW)
        store.finish_run(first, NOW, "ok", {"new": 3}, [], TokenUsage(input=10, cost=0.25))
        second = store.start_run("digest", NOW)
        assert second > first
        assert store.close_unfinished_runs(NOW) == 1
        runs = {run["kind"]: run["status"] for run in store.last_runs()}
        assert runs == {"collect": "ok", "digest": "abandoned"}
        assert store.spend_since(NOW - DAY) == 0.25
        assert store.spend_per_day(NOW - DAY) == [(to_text(NOW)[:10], 0.25)]
        assert store.counts()["runs"] == 2


def test_sources_keep_their_fetch_state_and_a_changed_url_resets_it(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.sync_sources([("a", "feed", "u1")])
        ok = FetchOutcome(source="a", status="ok", etag='"v1"', http_status=200)
        store.record_fetch(ok, NOW, NOW + timedelta(minutes=30))
        store.sync_sources([("a", "feed", "u1")])
        assert store.source_state("a").etag == '"v1"'
        store.sync_sources([("a", "feed", "u2")])
        state = store.source_state("a")
        assert (state.url, state.etag, state.next_fetch_at) == ("u2", None, None)
        with pytest.raises(KeyError):
            store.source_state("missing")
        store.remember_links("a", ["https://s.example/1", "https://s.example/2"], NOW)
        store.remember_links("a", ["https://s.example/1"], NOW + DAY)
        assert store.site_links("a", limit=1) == {"https://s.example/1"}


def test_social_cursors_and_engagement_readings_are_kept(open_store: StoreOpener) -> None:
    with open_store() as store:
        store.sync_sources([("x", "feed", "u")])
        store.add_items("x", [item(1)], NOW)
        seen = FetchOutcome(
            source="x",
            status="ok",
            cursor="c-2",
            engagement=(Engagement("it_1", "@a", likes=5),),
        )
        store.record_social(seen, NOW)
        store.record_social(seen, NOW)  # the same reading again replaces, not duplicates
        assert store.source_cursors() == {"x": "c-2"}
        [reading] = store.engagement_since(["x"], NOW - DAY)
        assert (reading.engagement.likes, reading.engagement.views) == (5, None)


def test_votes_replace_earlier_ones_and_the_same_vote_again_changes_nothing(
    open_store: StoreOpener,
) -> None:
    vote = Vote("daily", "st_1", 1, ("a",), ("rates",), NOW)
    with open_store() as store:
        assert store.record_vote(vote)
        assert not store.record_vote(vote)
        assert store.record_vote(Vote("daily", "st_1", -1, ("a",), ("rates",), NOW + DAY))
        assert store.vote_values("daily", ["st_1", "st_2"]) == {"st_1": -1}
        assert store.vote_values("daily", []) == {}
        assert [v.value for v in store.votes("daily")] == [-1]


def test_story_histories_alerts_and_baselines_read_the_same(open_store: StoreOpener) -> None:
    with open_store() as store:
        store.add_items("a", [item(1), item(2)], NOW)
        store.add_items("b", [item(1)], NOW + timedelta(minutes=5))
        store.assign_stories({"it_1": "st_1", "it_2": "st_1"}, {}, NOW)
        arrivals = store.story_arrivals(["st_1"], NOW - DAY)["st_1"]
        assert sorted(a.source for a in arrivals) == ["a", "a", "b"]
        assert sum(store.items_per_hour(["a", "b"], NOW - DAY, NOW + DAY).values()) == 2
        assert store.wide_story_outlets(["a", "b"], NOW - DAY, 2) == (1, {"a": 1, "b": 1})
        assert [i.id for i in store.lead_items(["st_1"])] == ["it_1"]
        assert [i.id for i in store.story_members("st_1")] == ["it_1", "it_2"]
        assert [len(s.title) > 0 for s in store.sightings(NOW - DAY, 10)] == [True] * 3
        alert = AlertRecord("daily", "st_1", "outlets", 2, NOW)
        store.save_alert(digest("al-1", kind="alert"), ["mail"], alert)
        assert store.alerted("daily", NOW - DAY) == {"st_1": 2}
        assert [a.digest_id for a in store.recent_alerts(profile="daily")] == ["al-1"]
        assert store.recent_alerts(profile="weekly") == []
        assert store.recent_digests("daily", 5) == []  # an alert is not a digest
        store.save_baselines("bursts", b"\x00\xffstate", NOW)
        store.save_baselines("bursts", b"\x01", NOW + DAY)
        assert store.baselines("bursts") == b"\x01"
        assert store.baselines("none") is None


def test_search_finds_stories_by_word_stem_source_and_time_on_both_backends(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.add_items("a", [item(1, text="Cloud outages hit banks"), item(2)], NOW)
        store.add_items("b", [item(3, text="The cloud provider apologises")], NOW + DAY)
        store.assign_stories({"it_1": "st_c", "it_3": "st_c", "it_2": "st_2"}, {}, NOW)
        [hit] = store.search("clouds")  # another form of the word finds it
        assert (hit.story_id, hit.items) == ("st_c", 2)
        assert [h.story_id for h in store.search("outage")] == ["st_c"]
        assert store.search("clou") == []  # whole words, not what a reader half typed
        assert [h.story_id for h in store.search("cloud", sources=["b"])] == ["st_c"]
        assert store.search("cloud banks", until=NOW + timedelta(hours=1))[0].title == "Story 1"
        assert store.search("nothing-like-it") == []
        assert store.search("it's (cloud) & | !") == []  # no reader's text is query syntax
        assert [h.story_id for h in store.search(None)] == ["st_c", "st_2"]  # newest first


def test_a_failed_transaction_leaves_nothing_behind(open_store: StoreOpener) -> None:
    with open_store() as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.add_items("a", [item(1)], NOW)
            raise RuntimeError("stop")
        assert store.items_by_id(["it_1"]) == []


# A process killed inside a store transaction (the store's own crash points): after it,
# the other processes see all of the transaction or none of it, on either backend.
def child_store(store: Store) -> str:
    """Python that opens, in a child process, the store the test has open: as `store`."""
    url = None if store.sql.dialect == "sqlite" else store.sql.location
    tests = str(REPO_ROOT / "tests")
    return textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path[:0] = [{str(REPO_ROOT)!r}, {tests!r}]
        from core.store import Store
        url = {url!r}
        store = Store.open_url(url, Path(".")) if url else Store.open(Path({str(store.path)!r}))
    """)


CRASHING_SAVE = """
from datetime import UTC, datetime
from core.digest import TokenUsage
from core.store import AlertRecord
from test_store_backends import digest
from test_store import item
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
store.add_items("a", [item(1)], NOW)
if {alert!r}:
    store.save_alert(digest("d1", kind="alert"), ["mail"], AlertRecord("daily", "s", "r", 1, NOW))
else:
    store.save_digest(digest("d1"), {{"it_1": "cited"}}, ["mail"], TokenUsage())
"""


@pytest.mark.parametrize("point", ["digest.inside_save", "alert.inside_save"])
def test_a_process_killed_inside_a_save_leaves_no_half_digest(
    open_store: StoreOpener, point: str
) -> None:
    with open_store() as store:
        script = child_store(store) + CRASHING_SAVE.format(alert=point.startswith("alert"))
    crashed = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TRENDFINDER_CRASH_AT": point},
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr.decode()
    with open_store() as store:
        assert [i.id for i in store.items_by_id(["it_1"])] == ["it_1"]  # committed before
        assert not store.has_digest("d1")
        assert store.deliveries() == []
        assert store.pending_items("daily", ["a"], NOW - DAY) != []
        assert store.alerted("daily", NOW - DAY) == {}


# Postgres's own ---------------------------------------------------------------------------

_PG_TYPES = {
    "TEXT": "text",
    "INTEGER": "integer",
    "REAL": "double precision",
    "BLOB": "bytea",
}


def expected_postgres_schema() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """EXPECTED_* of test_store as Postgres spells them: an INTEGER primary key is a bigint
    identity, primary-key columns are NOT NULL, and the FTS5 index is a tsvector column."""
    tables: dict[str, Any] = {}
    for name, (_, columns) in EXPECTED_TABLES.items():
        if name.startswith("items_fts"):
            continue
        found = []
        for column, kind, not_null, default, key in columns:
            identity = kind == "INTEGER" and key == 1
            pg_kind = "bigint" if identity else _PG_TYPES[kind]
            found.append((column, pg_kind, not_null or key > 0, default, key))
        if name == "items":
            found.append(("search", "tsvector", False, None, 0))
        tables[name] = tuple(found)
    indexes = {**EXPECTED_INDEXES, "items_search": ("items", ("search",), False, None)}
    return tables, EXPECTED_FOREIGN_KEYS, indexes


def postgres_schema(url: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The database's tables, foreign keys and named indexes, in the expected shape."""
    with psycopg.connect(url) as conn:
        keys_of: dict[tuple[str, str], int] = {
            (table, column): position
            for table, column, position in conn.execute(
                "SELECT k.table_name, k.column_name, k.ordinal_position "
                "FROM information_schema.key_column_usage k JOIN "
                "information_schema.table_constraints c USING (constraint_name, table_name) "
                "WHERE c.constraint_type = 'PRIMARY KEY' AND k.table_schema = 'public'"
            )
        }
        tables: dict[str, list[Any]] = {}
        for table, column, kind, nullable, default in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name != 'trendfinder_schema' ORDER BY table_name, ordinal_position"
        ):
            default = default.removesuffix("::text") if default else None
            key = keys_of.get((table, column), 0)
            tables.setdefault(table, []).append((column, kind, nullable == "NO", default, key))
        keys: dict[str, set[tuple[str, str, str]]] = {}
        for table, column, target, target_column in conn.execute(
            "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, "
            "b.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "JOIN pg_attribute b ON b.attrelid = c.confrelid AND b.attnum = c.confkey[1] "
            "WHERE c.contype = 'f'"
        ):
            keys.setdefault(table, set()).add((column, target, target_column))
        indexes = {}
        for name, table, columns, unique, where in conn.execute(
            "SELECT i.relname, t.relname, array(SELECT a.attname FROM unnest(x.indkey) "
            "WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum "
            "= k.n ORDER BY k.o), x.indisunique, pg_get_expr(x.indpred, x.indrelid) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace "
            "WHERE s.nspname = 'public' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ):
            indexes[name] = (table, tuple(columns), unique, where.strip("()") if where else None)
    return {name: tuple(columns) for name, columns in tables.items()}, keys, indexes


@pytest.mark.parametrize("version", range(SCHEMA_VERSION + 1))
def test_a_postgres_store_from_any_older_version_migrates_and_keeps_its_data(
    postgres_url: str, tmp_path: Path, version: int
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for number in range(1, version + 1):
            conn.execute(postgres_script(number).encode())
        if version:
            conn.execute("CREATE TABLE trendfinder_schema (version INTEGER)")
            conn.execute("INSERT INTO trendfinder_schema VALUES (%s)", [version])
            conn.execute(
                "INSERT INTO sources (name, kind, url, fetch_url) VALUES ('s', 'feed', 'u', 'u')"
            )
            conn.execute(
                "INSERT INTO items (id, url, title, published, fetched, content_hash) "
                "VALUES ('it_1', 'https://e.x/1', 'T', %s, %s, 'h')",
                ["2026-11-27T12:00:00.000000Z"] * 2,
            )
            conn.execute(
                "INSERT INTO item_sources (item_id, source, first_seen) VALUES ('it_1', 's', %s)",
                ["2026-11-27T12:00:00.000000Z"],
            )
    with Store.open_url(postgres_url, tmp_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        if version:
            assert [s.name for s in store.source_states()] == ["s"]
            assert [i.sources for i in store.items_by_id(["it_1"])] == [("s",)]
    assert postgres_schema(postgres_url) == expected_postgres_schema()


def test_two_processes_opening_a_new_postgres_store_at_once_migrate_it_once(
    postgres_url: str, tmp_path: Path
) -> None:
    opening = (
        f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from pathlib import Path; "
        f"from core.store import Store; Store.open_url({postgres_url!r}, Path('.')).close()"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", opening], stderr=subprocess.PIPE) for _ in range(3)
    ]
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read() if child.stderr else ""
    with Store.open_url(postgres_url, tmp_path) as store:
        assert store.schema_version == SCHEMA_VERSION


def test_a_postgres_store_read_only_creates_nothing_and_refuses_writes(
    postgres_url: str, tmp_path: Path
) -> None:
    with pytest.raises(StoreMissing, match="there is no store at postgresql://"):
        Store.open_url(postgres_url, tmp_path, read_only=True)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(postgres_script(1).encode())
        conn.execute("CREATE TABLE trendfinder_schema (version INTEGER)")
        conn.execute("INSERT INTO trendfinder_schema VALUES (1)")
    with pytest.raises(StoreNeedsMigration, match="is at schema version 1"):
        Store.open_url(postgres_url, tmp_path, read_only=True)
    Store.open_url(postgres_url, tmp_path).close()
    with (
        pytest.raises(StoreError, match="read-only transaction"),
        Store.open_url(postgres_url, tmp_path, read_only=True) as store,
    ):
        assert store.source_states() == []
        store.start_run("collect", NOW)


def test_a_postgres_store_from_a_newer_trendfinder_is_refused(
    postgres_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE trendfinder_schema (version INTEGER)")
        conn.execute("INSERT INTO trendfinder_schema VALUES (%s)", [SCHEMA_VERSION + 1])
    with pytest.raises(StoreError, match="newer than this trendfinder"):
        Store.open_url(postgres_url, tmp_path)


def test_a_row_locked_too_long_is_store_locked_naming_the_server(
    postgres_url: str, tmp_path: Path
) -> None:
    with Store.open_url(postgres_url, tmp_path) as store:
        run = store.start_run("collect", NOW)
    with psycopg.connect(postgres_url) as holder:  # another session, mid-transaction
        holder.execute("SELECT * FROM runs WHERE id = %s FOR UPDATE", [run])
        with (
            pytest.raises(StoreLocked, match=r"the store at postgresql://trendfinder@127\.0"),
            Store.open_url(postgres_url, tmp_path, busy_timeout=0.1) as store,
        ):
            store.finish_run(run, NOW, "ok", {}, [])


def test_a_server_that_is_not_there_is_one_line_naming_it(tmp_path: Path) -> None:
    from loopback import closed_port

    url = f"postgresql://trendfinder@127.0.0.1:{closed_port()}/nowhere"
    with pytest.raises(StoreError, match=f"cannot open the store at {url}: ") as caught:
        Store.open_url(url, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_database_that_orders_text_by_locale_is_refused(
    postgres_server: Any, tmp_path: Path
) -> None:
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS by_locale")
        conn.execute(
            "CREATE DATABASE by_locale TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
    with pytest.raises(StoreError, match=r"orders text by a locale's rules.*C collation"):
        Store.open_url(postgres_server.url("by_locale"), tmp_path)


# The config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://me@db/news", "expected a postgresql://user@host/database URL"),
        ("postgresql://me@db", "the URL names no database"),
        ("postgresql:///news", "the URL names no host"),
    ],
)
def test_a_bad_storage_url_is_one_clear_line(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        StorageConfig(url=url)


def test_a_password_comes_from_the_environment_never_from_the_file(
    postgres_server: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = "sources: [{name: a, url: 'https://news.example/feed'}]\n"
    written = postgres_url.replace("trendfinder@", "trendfinder:loopback-only@")
    with pytest.raises(ConfigError, match=r"storage\.url: the password is written in the file"):
        parse_config(f"{sources}storage: {{url: '{written}'}}")
    referenced = postgres_url.replace("trendfinder@", "trendfinder:${TF_DB_PASSWORD}@")
    config = parse_config(
        f"{sources}storage: {{url: '{referenced}'}}",
        env={"TF_DB_PASSWORD": postgres_server.password},
    )
    monkeypatch.delenv("PGPASSWORD")  # only the reference has it now
    with Store.open_config(config.storage) as store:
        assert store.sql.location == postgres_url  # messages never show the password
        assert store.schema_version == SCHEMA_VERSION


def test_storage_url_opens_postgres_and_is_no_sqlite_file(postgres_url: str) -> None:
    storage = StorageConfig(url=postgres_url)
    with Store.open_config(storage) as store:
        assert store.sql.dialect == "postgresql"
    assert storage.location == postgres_url
    with pytest.raises(UsageError, match=r"storage\.url names a Postgres store"):
        _ = storage.database
    with pytest.raises(ValueError, match="not both"):
        StorageConfig(url=postgres_url, path=Path("t.db"))
