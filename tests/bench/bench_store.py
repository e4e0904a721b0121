"""How fast the store answers "new items for profile P since its last digest" at scale.

    python tests/bench/bench_store.py [--items 1000000]

Builds a real SQLite store with N items spread over 30 days and 50 sources (a tenth of
them seen by two sources), marks most of the older ones as covered by earlier digests,
then times the daemon's own queries for a profile that follows 20 of the sources, and
the writes of a collect cycle.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.clock import to_text
from core.items import FetchOutcome, NewItem
from core.store import Store

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SOURCES = [f"source-{n:02d}" for n in range(50)]


def build(store: Store, count: int) -> None:
    store.sync_sources((name, "feed", f"https://example.com/{name}") for name in SOURCES)
    span = timedelta(days=30).total_seconds()
    batch = 50_000
    conn = store.db.conn
    with store.db.atomic():
        conn.execute(
            "INSERT INTO digests (id, profile, created_at, analyzer, window_from, window_to, body) "
            "VALUES ('daily-old', 'daily', ?, 'offline', ?, ?, '{}')",
            [to_text(NOW), to_text(NOW), to_text(NOW)],
        )
    for start in range(0, count, batch):
        items, links, covered = [], [], []
        for n in range(start, min(start + batch, count)):
            item_id = "it_" + hashlib.sha256(str(n).encode()).hexdigest()[:24]
            seen = to_text(NOW - timedelta(seconds=span * (1 - n / count)))
            items.append(
                (item_id, f"https://example.com/{n}", f"Headline {n}", "", seen, seen, "h")
            )
            links.append((SOURCES[n % 50], seen, item_id))
            if n % 10 == 0:
                links.append((SOURCES[(n + 7) % 50], seen, item_id))
            # Everything but the last day was covered by earlier digests.
            if n < count * 29 / 30:
                covered.append(("daily", item_id, "daily-old", "considered"))
        with store.db.atomic():
            conn.executemany(
                "INSERT INTO items (id, url, title, text, published, fetched, content_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                items,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO item_sources (source, first_seen, item_id) VALUES (?, ?, ?)",
                links,
            )
            conn.executemany(
                "INSERT INTO digest_items (profile, item_id, digest_id, role) VALUES (?, ?, ?, ?)",
                covered,
            )


def timed(label: str, action, repeat: int = 5) -> None:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    size = len(result) if hasattr(result, "__len__") else result
    print(f"  {label:<48} {best * 1000:8.1f} ms  ({size} rows)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(Path(folder) / "bench.db")
        started = time.perf_counter()
        build(store, args.items)
        print(f"store with {args.items:,} items built in {time.perf_counter() - started:.1f} s")
        followed = SOURCES[:20]
        timed(
            "pending items, 1-day lookback, 20 sources",
            lambda: store.pending_items("daily", followed, NOW - timedelta(days=1)),
        )
        timed(
            "pending items, 7-day lookback, 20 sources",
            lambda: store.pending_items("daily", followed, NOW - timedelta(days=7)),
        )
        timed(
            "count pending (status), 1-day lookback",
            lambda: store.count_pending("daily", followed, NOW - timedelta(days=1)),
        )
        timed("ungrouped items", store.ungrouped_items, repeat=1)
        # The collect path's writes: a poll's new items, and every polled source's state.
        polls = iter(range(1_000_000))
        timed("add 2,000 new items from one source", lambda: add_poll(store, next(polls)))
        many = [f"many-{n:04d}" for n in range(1000)]
        store.sync_sources((name, "feed", f"https://example.com/{name}") for name in many)
        timed("record fetch state of 1,000 sources", lambda: record_fetches(store, many))
        store.close()


def add_poll(store: Store, poll: int) -> int:
    items = [
        NewItem(
            id=f"poll_{poll}_{n}",
            url=f"https://example.com/poll/{poll}/{n}",
            title=f"Headline {n}",
            text="body " * 40,
            published=NOW,
            content_hash=f"h{n}",
        )
        for n in range(2000)
    ]
    return store.add_items(SOURCES[1], items, NOW).new


def record_fetches(store: Store, names: list[str]) -> int:
    # One transaction, as the runner writes a batch of fetched sources.
    with store.transaction():
        for n, name in enumerate(names):
            status = "error" if n % 3 else "ok"
            outcome = FetchOutcome(source=name, status=status, error="HTTP 500", http_status=500)
            store.record_fetch(outcome, NOW, NOW)
    return len(names)


if __name__ == "__main__":
    main()
