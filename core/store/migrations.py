"""The schema, as the forward migrations that build it.

Released entries are SQL text and stay exactly as shipped: a store created today must have,
byte for byte, the schema an old store reaches by migrating (tests/test_store.py checks both
against a schema written out by hand).
"""

from __future__ import annotations

import re

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
    # Social sources: each one's cursor (since_id, after, timestamps) and the engagement
    # numbers of its items each time they were seen, so growth between polls is a signal.
    """
    ALTER TABLE sources ADD COLUMN cursor TEXT;
    CREATE TABLE engagement (
        item_id TEXT NOT NULL REFERENCES items (id),
        source TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        author TEXT NOT NULL,
        likes INTEGER NOT NULL,
        reposts INTEGER NOT NULL,
        comments INTEGER NOT NULL,
        views INTEGER,
        PRIMARY KEY (item_id, source, seen_at)
    ) WITHOUT ROWID;
    CREATE INDEX engagement_by_source ON engagement (source, seen_at);
    """,
    # The web app (daemon/web): full-text search over items' titles and texts (an FTS5
    # index kept in step with items by triggers), and readers' votes on stories per profile
    # with the story's sources and title terms as they were when voted on; items by URL, to
    # find the stories of a stored digest's trends.
    """
    CREATE VIRTUAL TABLE items_fts USING fts5 (
        title, text, content = 'items', content_rowid = 'rowid'
    );
    INSERT INTO items_fts (items_fts) VALUES ('rebuild');
    CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
    END;
    CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
        INSERT INTO items_fts (items_fts, rowid, title, text)
            VALUES ('delete', old.rowid, old.title, old.text);
    END;
    CREATE TRIGGER items_fts_update AFTER UPDATE OF title, text ON items BEGIN
        INSERT INTO items_fts (items_fts, rowid, title, text)
            VALUES ('delete', old.rowid, old.title, old.text);
        INSERT INTO items_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
    END;
    CREATE TABLE votes (
        profile TEXT NOT NULL,
        story_id TEXT NOT NULL,
        value INTEGER NOT NULL CHECK (value IN (-1, 1)),
        sources TEXT NOT NULL DEFAULT '[]',
        terms TEXT NOT NULL DEFAULT '[]',
        voted_at TEXT NOT NULL,
        PRIMARY KEY (profile, story_id)
    ) WITHOUT ROWID;
    CREATE INDEX votes_by_time ON votes (profile, voted_at);
    CREATE INDEX items_by_url ON items (url);
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
    # Scale out (issue 16): jobs that worker processes claim under a lease (core/store/jobs.py),
    # one row per kind and key (a feed's fetch), so enqueueing twice is one job.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        due_at TEXT NOT NULL,
        claimed_by TEXT,
        claim TEXT,
        lease_until TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        UNIQUE (kind, key)
    );
    CREATE INDEX jobs_due ON jobs (kind, due_at);
    """,
    # Collection speed (issue 13): new items enter the search index in one statement per
    # source (core/store/items.py add_items), not one trigger run per row, which cost twice
    # the CPU. The update and delete triggers stay: they touch few rows.
    """
    DROP TRIGGER items_fts_insert;
    """,
    # Workers on several machines (issue 16): each host's fetch slots, claimed under a lease
    # by the worker fetching from it (per-host politeness across workers), and the workers'
    # and schedulers' heartbeats for `status`.
    """
    CREATE TABLE host_slots (
        host TEXT NOT NULL,
        slot INTEGER NOT NULL,
        claimed_by TEXT,
        lease_until TEXT,
        PRIMARY KEY (host, slot)
    ) WITHOUT ROWID;
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # The web app at a million items (issue 15): a story's items with what its timeline and
    # outlets need, from the index alone (items' texts sit between and slow each row read).
    """
    CREATE INDEX items_story_members ON items (story_id, id, published);
    DROP INDEX items_story;
    """,
    # Search by word stems: the web app's search takes whole words (fast at a million items),
    # so "storm" must still find "storms". The index is rebuilt with FTS5's porter tokenizer
    # over unicode61; the triggers and add_items write to it by name, unchanged.
    """
    DROP TABLE items_fts;
    CREATE VIRTUAL TABLE items_fts USING fts5 (
        title, text, content = 'items', content_rowid = 'rowid',
        tokenize = 'porter unicode61'
    );
    INSERT INTO items_fts (items_fts) VALUES ('rebuild');
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


# Postgres runs the same numbered migrations. Their DDL is SQLite's; the few words that have
# another spelling there are rewritten (a rowid-less table is every Postgres table; an
# INTEGER PRIMARY KEY is an identity column; BLOB is BYTEA; REAL is DOUBLE PRECISION, as
# SQLite's REAL is 8 bytes). What has no such rewrite is replaced by number below.
_POSTGRES_WORDS = (
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
)

# Migration 6's FTS5 index and its triggers: on Postgres a generated tsvector column with a
# GIN index (kept in step by the server, no triggers). Migration 12 makes its words stems,
# as the porter tokenizer does on SQLite: English snowball stems and, unlike Postgres's
# 'english' configuration, no stop words, so both backends match the same words.
_POSTGRES_SEARCH = """
    ALTER TABLE items ADD COLUMN search tsvector
        GENERATED ALWAYS AS (to_tsvector('{config}', title || ' ' || text)) STORED;
    CREATE INDEX items_search ON items USING gin (search);
"""

_POSTGRES_STEMS = """
    CREATE TEXT SEARCH DICTIONARY trendfinder_stem (TEMPLATE = snowball, LANGUAGE = english);
    CREATE TEXT SEARCH CONFIGURATION trendfinder (COPY = simple);
    ALTER TEXT SEARCH CONFIGURATION trendfinder
        ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
        WITH trendfinder_stem;
    DROP INDEX items_search;
    ALTER TABLE items DROP COLUMN search;
"""


def postgres_script(number: int) -> str:
    """Migration `number` (from 1) as Postgres runs it."""
    script = MIGRATIONS[number - 1]
    if number == 6:
        search = _POSTGRES_SEARCH.format(config="simple")
        script = search + script[script.index("CREATE TABLE votes") :]
    if number == 9:
        return ""  # Postgres's search column is kept by the server: no trigger to drop
    if number == 12:
        return _POSTGRES_STEMS + _POSTGRES_SEARCH.format(config="trendfinder")
    for pattern, replacement in _POSTGRES_WORDS:
        script = pattern.sub(replacement, script)
    return script
