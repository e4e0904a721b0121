"""Server time of every web page on a store with a million items (goal: < 100 ms each).

    python tests/bench/bench_web.py [--items 1000000] [--cache DIR]

Builds the store as bench_store.py does (30 days, 50 sources, most items covered by earlier
digests) with headlines drawn from a vocabulary, groups items into stories of five, stores
a digest, then requests each page in-process through Starlette (no network), best of five
(and the first).
With --cache the store is built once into DIR and reused by later runs (building a million
items takes about ten minutes); a newer schema is migrated on open, as a daemon would.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sample_digests
from bench.bench_store import SOURCES, build
from starlette.testclient import TestClient

from core.config import parse_config
from core.digest import Digest
from core.store import Store
from daemon.web.app import create_app

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
        web = TestClient(create_app(config), base_url="http://127.0.0.1")
        pages = [
            "/",
            "/stories",
            "/stories?q=climate+storm",
            "/stories?q=museum&source=source-03",
            "/stories?q=flood&since=2026-11-20&until=2026-11-25",
            "/stories?q=museum&status=rising",
            f"/stories/st{args.items // 10}",
            "/sources",
            "/digests",
            f"/digests/{digest.id}",
            f"/digests/{digest.id}/delivered",
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
            # The first request shows what a cache (the digest preview's) costs when cold.
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
