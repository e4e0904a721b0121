"""Server time of every web page on a store with a million items (goal: < 100 ms each).

    python tests/bench/bench_web.py [--items 1000000] [--cache DIR]

Builds the store as bench_store.py does (30 days, 50 sources, most items covered by earlier
digests) with headlines drawn from a vocabulary, groups items into stories of five, stores
a digest, then starts the app as `trendfinder serve` does (its start-up work done before it
takes connections, timed) and requests each page in-process through Starlette (no network),
best of five and the first, which is the first request of that page after start-up.
With --cache the store is built once into DIR and reused by later runs (building a million
items takes about ten minutes); a newer schema is migrated on open, as a daemon would.
With --cold the store file is dropped from the OS's cache before start-up, as after a reboot.
Before start-up 5,000 new items wait for the next digest (its preview's); then a collect
cycle writes 1,000 more, which empties every connection's cache and makes the preview
stale: each page is requested again, the time the background thread takes to remake the
preview is printed, and every page is requested once more after that. The run's new items
are taken out of the store at its end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sample_digests
from bench.bench_store import SOURCES, build
from starlette.testclient import TestClient

from core.clock import utcnow
from core.config import Config, parse_config
from core.digest import Digest
from core.items import NewItem
from core.store import Store

WORDS = [
    "climate",
    "bill",
    "vote",
    "storm",
    "market",
    "chip",
    "football",
    "museum",
    "election",
    "court",
    "strike",
    "energy",
    "bank",
    "rates",
    "health",
    "vaccine",
    "flood",
    "trade",
    "tariff",
    "space",
    "rocket",
    "school",
    "union",
    "police",
    "fire",
    "film",
    "music",
    "award",
    "border",
    "summit",
    "oil",
    "gas",
    "river",
    "bridge",
]


def title(n: int) -> str:
    rng = random.Random(n)
    return f"{' '.join(rng.sample(WORDS, 5)).capitalize()} {n}"


def config_text(folder: Path) -> str:
    sources = "".join(
        f"  - name: {name}\n    url: https://example.com/{name}\n" for name in SOURCES
    )
    followed = ", ".join(SOURCES[:20])
    return (
        f"storage:\n  path: {folder / 'bench.db'}\nsources:\n{sources}"
        f"digests:\n  - name: daily\n    focus: climate and energy\n    sources: [{followed}]\n"
        f"    deliver:\n      - kind: file\n"
    )


def sample_digest() -> Digest:
    return sample_digests.digest(profile="daily").model_copy(update={"id": "daily-old"})


def build_store(path: Path, items: int) -> None:
    with Store.open(path) as store:
        build(store, items, title)
        with store.transaction():
            store.db.execute("UPDATE items SET story_id = 'st' || (rowid / 5)")
            # bench_store's earlier digest gets a real body, as a digest page shows it.
            store.db.execute(
                "UPDATE digests SET body = ? WHERE id = 'daily-old'", [sample_digest().to_json()]
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, help="keep the built store in this folder")
    parser.add_argument("--cold", action="store_true", help="start with the store off the OS cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = args.cache or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if (folder / "bench.db").exists():
            with Store.open(folder / "bench.db"):
                pass  # migrates a store built by an older schema
            print(f"reused the store in {folder} ({time.perf_counter() - started:.1f} s)")
        else:
            build_store(folder / "bench.db", args.items)
            print(f"store with {args.items:,} items built in {time.perf_counter() - started:.1f} s")
        digest = sample_digest()
        config = parse_config(config_text(folder), base=folder)
        forget_new_items(folder / "bench.db")  # an interrupted run's
        collect_cycle(folder / "bench.db", WAITING)
        try:
            run(folder, config, args, digest.id)
        finally:
            forget_new_items(folder / "bench.db")


def run(folder: Path, config: Config, args: argparse.Namespace, digest_id: str) -> None:
    """Start the app over the store in `folder` and time its pages (see the module's text)."""
    profile = config.digests[0]
    with Store.open(folder / "bench.db", read_only=True) as store:
        waiting = store.count_pending(profile.name, SOURCES[:20], utcnow() - profile.lookback)
    print(f"{waiting:,} items wait for the next digest of {profile.name} (its preview)")
    if args.cold:
        evict(folder / "bench.db")
    # As `trendfinder serve` starts: its import of the app, the app, its start-up work.
    began, began_cpu = time.perf_counter(), time.process_time()
    from daemon.web.app import create_app

    with TestClient(create_app(config, keep_previews=True), base_url="http://127.0.0.1") as web:
        print(
            f"start-up (until the server would take connections) "
            f"{time.perf_counter() - began:.1f} s, cpu {time.process_time() - began_cpu:.1f} s"
            f"{', the store cold on disk' if args.cold else ''} "
            f"(load {os.getloadavg()[0]:.2f})"
        )
        request_pages(web, args.items, digest_id)
        began = time.perf_counter()
        collect_cycle(folder / "bench.db", CYCLE)
        print(
            f"a collect cycle stored {CYCLE:,} new items in "
            f"{time.perf_counter() - began:.1f} s (load {os.getloadavg()[0]:.2f}); then, "
            "with the preview being remade meanwhile:"
        )
        began = time.perf_counter()
        remade(web, "/digests/preview/daily", began, wait=False)  # sets the remake going
        request_pages(web, args.items, digest_id)
        remade(web, "/digests/preview/daily", began)
        print("once the preview was remade (the pages warmed again meanwhile):")
        request_pages(web, args.items, digest_id)


# What a collect cycle of the daemon brings meanwhile, for the followed sources, and what
# the daemon collected since the last digest before the server started (the preview's).
CYCLE = 1000
WAITING = 5000
NEW = "bench-new-"  # the ids of those items, which each run takes out again
STALE = "a newer preview is being made"


def collect_cycle(path: Path, count: int) -> None:
    """New items from the followed sources, stored as the daemon stores them, in stories of
    five as the bench's are."""
    now = utcnow()
    stamp = time.perf_counter_ns()
    followed = SOURCES[:20]
    with Store.open(path) as store:
        for k, source in enumerate(followed):
            items = [
                NewItem(
                    id=f"{NEW}{stamp}_{k}_{n}",
                    url=f"https://example.com/new/{stamp}/{k}/{n}",
                    title=title(stamp % 1_000_000 + 1000 * k + n),
                    text="",
                    published=now,
                    content_hash="h",
                )
                for n in range(count // len(followed))
            ]
            store.add_items(source, items, now)
        with store.transaction():
            store.db.execute(
                "UPDATE items SET story_id = 'st' || (rowid / 5) WHERE story_id IS NULL"
            )


def forget_new_items(path: Path) -> None:
    """Take the run's new items out again (search index, sources, rows), so that every run
    starts from the same store."""
    span = [NEW, NEW + "~"]
    with Store.open(path) as store:
        # Nothing refers to these items but their item_sources rows, deleted first; checked
        # foreign keys would scan the digests' million item rows for each deleted item.
        store.db.execute("PRAGMA foreign_keys = OFF")
        with store.transaction():
            # An external-content FTS5 index forgets a row when told its old values.
            store.db.execute(
                "INSERT INTO items_fts (items_fts, rowid, title, text) "
                "SELECT 'delete', rowid, title, text FROM items WHERE id >= ? AND id < ?",
                span,
            )
            store.db.execute("DELETE FROM item_sources WHERE item_id >= ? AND item_id < ?", span)
            store.db.execute("DELETE FROM items WHERE id >= ? AND id < ?", span)


def remade(web: TestClient, path: str, since: float, *, wait: bool = True) -> None:
    """Whether the server's background thread has made the preview again since the store
    changed at `since`, polled every 0.1 s (at most 5 minutes) when `wait`."""
    for _ in range(3000 if wait else 1):
        began = time.perf_counter()
        page = web.get(path).text
        took = time.perf_counter() - began
        if STALE not in page:
            break
        time.sleep(0.1)
    state = "remade" if STALE not in page else "being remade"
    print(
        f"  {path}: {state} {time.perf_counter() - since:.1f} s after the write, "
        f"{len(re.findall(r'<h2', page))} trends (this request {took * 1000:.0f} ms; "
        f"load {os.getloadavg()[0]:.2f})"
    )


def evict(path: Path) -> None:
    """Drop the store's files from the OS's page cache (clean pages only; nothing else's)."""
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            with name.open("rb") as file:
                os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def request_pages(web: TestClient, items: int, digest_id: str) -> None:
    pages = [
        "/",
        "/stories",
        "/stories?q=climate+storm",
        "/stories?q=museum&source=source-03",
        "/stories?q=flood&since=2026-11-20&until=2026-11-25",
        "/stories?q=museum&status=rising",
        f"/stories/st{items // 10}",
        "/sources",
        "/digests",
        f"/digests/{digest_id}",
        f"/digests/{digest_id}/delivered",
        "/status",
        "/digests/preview/daily",
    ]
    for path in pages:
        times, cpu = [], []
        for _ in range(5):
            began, began_cpu = time.perf_counter(), time.process_time()
            response = web.get(path)
            times.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        load = os.getloadavg()[0]
        # The first request is the page's first after start-up: what a cold cache costs.
        # CPU time (the process's, all threads) is what the page costs on a quiet machine
        # but for waiting on the disk; wall time on a shared one includes waiting for a core.
        print(
            f"  {path:<52} {min(times) * 1000:8.1f} ms  cpu {min(cpu) * 1000:6.1f} ms  "
            f"(first {times[0] * 1000:.0f} ms, cpu {cpu[0] * 1000:.0f} ms, "
            f"HTTP {response.status_code}, {len(response.content) / 1024:.0f} KiB, "
            f"load {load:.2f})"
        )


if __name__ == "__main__":
    main()
