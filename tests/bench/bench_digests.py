"""Digest benchmarks: ranking quality, cost as the work grows, and token efficiency.

    python tests/bench/bench_digests.py            # everything (sizes 1k, 10k, 50k)
    python tests/bench/bench_digests.py --sizes 1000 10000

1. Ranking: NDCG@10 of the offline analyzer's trend order on the labelled UCI headlines,
   where a story's importance is its number of distinct publishers. The items go through the
   production grouping (digests.group.assign_stories) and the production ranking.
2. Scale: selection + grouping + packing + offline ranking on N items in a real SQLite store,
   each size in a fresh process so its peak memory (max RSS) is its own.
3. Token efficiency: distinct stories that 100k tokens carry, packed vs the naive dump of
   every item's title and text in arrival order.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.config import Config, parse_config  # noqa: E402
from core.items import NewItem, StoredItem  # noqa: E402
from core.store import Store  # noqa: E402
from daemon.runner import Runner  # noqa: E402
from daemon.select import select  # noqa: E402
from digests import offline  # noqa: E402
from digests.build import build_offline, scored_stories  # noqa: E402
from digests.group import assign_stories  # noqa: E402
from digests.grouping import GroupInput  # noqa: E402
from digests.pack import pack  # noqa: E402
from digests.selection import Selection  # noqa: E402
from digests.tokens import TokenCounter, load_counter  # noqa: E402

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
TOKENS = 100_000
_DATA = Path("shared") / "data" / "stories" / "uci-news-dev.csv"
UCI = (
    Path(os.environ["TRENDFINDER_SHARED_DATA"]) / "stories" / "uci-news-dev.csv"
    if ("TRENDFINDER_SHARED_DATA" in os.environ)
    else next((p / _DATA for p in REPO.parents if (p / _DATA).is_file()), REPO.parent / _DATA)
)


def _config(database: Path, sources: list[str], max_trends: int = 10) -> Config:
    listed = "\n".join(
        f"  - {{name: '{s}', url: 'https://s{n}.example/feed'}}" for n, s in enumerate(sources)
    )
    return parse_config(
        f"storage: {{path: '{database}'}}\nsources:\n{listed}\ndigests:\n"
        f"  - {{name: bench, focus: 'general news readers', max_trends: {max_trends}, "
        "deliver: [{kind: file}]}\n",
        env={},
    )


# 1. Ranking ----------------------------------------------------------------------------------


def ndcg_at_10() -> dict[str, float]:
    with UCI.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    label = {row["ID"]: row["STORY"] for row in rows}
    publishers: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        publishers[row["STORY"]].add(row["PUBLISHER"])
    inputs = [
        GroupInput(row["ID"], row["TITLE"], "", row["PUBLISHER"], NOW - timedelta(hours=1))
        for row in rows
    ]
    started = time.perf_counter()
    assignment = assign_stories(inputs)
    grouping = time.perf_counter() - started
    items = tuple(
        StoredItem(
            id=row["ID"],
            url=row["URL"],
            title=row["TITLE"],
            text="",
            published=NOW - timedelta(hours=1),
            fetched=NOW - timedelta(hours=1),
            sources=(row["PUBLISHER"],),
            story_id=assignment.stories[row["ID"]],
        )
        for row in rows
    )
    config = _config(Path("unused.db"), ["x"])
    selection = Selection(
        profile=config.digests[0],
        window_from=NOW - timedelta(days=1),
        window_to=NOW,
        items=items,
        previous=(),
        reported={},
        source_weights={},
        usual_rates={},
    )
    trends = offline.rank(scored_stories(selection), 10)
    gains = []
    seen: set[str] = set()
    for story in trends:
        # A trend stands for the labelled story most of its items belong to; naming one
        # story twice earns nothing the second time.
        truth = Counter(label[item.id] for item in story.window.items).most_common(1)[0][0]
        gains.append(0 if truth in seen else len(publishers[truth]))
        seen.add(truth)
    ideal = sorted((len(p) for p in publishers.values()), reverse=True)[:10]

    def dcg(values: list[int]) -> float:
        return sum(g / math.log2(rank + 2) for rank, g in enumerate(values))

    return {"ndcg_at_10": dcg(gains) / dcg(ideal), "grouping_s": grouping, "items": len(rows)}


# 2. Scale ------------------------------------------------------------------------------------

_FILLER = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "vo", "ze")
    for b in (
        "ban",
        "cor",
        "dil",
        "fen",
        "gar",
        "hox",
        "jun",
        "kel",
        "lum",
        "mor",
        "nix",
        "pol",
        "qua",
        "rin",
        "sol",
        "tam",
        "ulm",
        "ven",
        "wex",
        "yor",
    )
]


def synthetic(count: int, seed: int = 7) -> list[tuple[str, NewItem, str]]:
    """(source, item, true story) in arrival order: Zipf-sized stories over 200 sources.

    Each story has six words of its own; titles and texts mix them with shared filler words.
    """
    rng = random.Random(seed)
    stories = max(10, count // 8)
    weights = [1 / (rank + 1) for rank in range(stories)]
    out = []
    for number in range(count):
        story = rng.choices(range(stories), weights)[0]
        words = [f"t{story}{letter}" for letter in "abcdef"]
        title = " ".join(rng.sample(words, 4) + rng.sample(_FILLER, 2)).capitalize()
        text = " ".join(rng.choice(words if rng.random() < 0.5 else _FILLER) for _ in range(180))
        source = f"source-{rng.randrange(200):03d}"
        item = NewItem(
            id=f"it{number:06d}",
            url=f"https://{source}.example/{number}",
            title=title,
            text=text.capitalize() + ".",
            published=NOW - timedelta(minutes=count - number) * (1200 / count),
            content_hash=str(number),
        )
        out.append((source, item, f"story{story}"))
    return out


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale_one(count: int) -> dict[str, float]:
    data = synthetic(count)
    sources = sorted({source for source, _, _ in data})
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "bench.db"
        config = _config(database, sources)
        store = Store.open(database)
        runner = Runner(config, store, clock=lambda: NOW)
        by_source: dict[str, list[NewItem]] = defaultdict(list)
        for source, item, _ in data:
            by_source[source].append(item)
        with store.transaction():
            for source, items in by_source.items():
                store.add_items(source, items, NOW - timedelta(hours=1))
        before = _peak_mb()
        figures: dict[str, float] = {"items": count}
        started = time.perf_counter()
        figures["grouped"] = runner.group()
        figures["group_s"] = time.perf_counter() - started
        profile = config.digests[0]
        started = time.perf_counter()
        selection = select(store, config, profile, NOW)
        figures["select_s"] = time.perf_counter() - started
        started = time.perf_counter()
        build_offline(selection, NOW)
        figures["rank_s"] = time.perf_counter() - started
        # The model's path scores the stories itself; a digest takes one path or the other.
        stories = scored_stories(selection)
        counter = load_counter("o200k_base", Path(folder), download=False)
        started = time.perf_counter()
        packed = pack(stories, counter, TOKENS)
        figures["pack_s"] = time.perf_counter() - started
        figures["total_s"] = sum(v for k, v in figures.items() if k.endswith("_s"))
        figures["stories"] = len(stories)
        figures["packed_stories"] = len(packed.stories)
        figures["peak_mb"] = _peak_mb()
        figures["peak_before_mb"] = before
        store.close()
    return figures


# 3. Token efficiency -------------------------------------------------------------------------


def naive_stories(data: list[tuple[str, NewItem, str]], counter: TokenCounter) -> int:
    used, carried = 0, set()
    for _, item, story in data:
        cost = counter.count(f"{item.title}\n{item.text}\n\n")
        if used + cost > TOKENS:
            break
        used += cost
        carried.add(story)
    return len(carried)


def efficiency(count: int) -> dict[str, float]:
    data = synthetic(count)
    truth = {item.id: story for _, item, story in data}
    sources = sorted({source for source, _, _ in data})
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "bench.db"
        config = _config(database, sources)
        store = Store.open(database)
        runner = Runner(config, store, clock=lambda: NOW)
        with store.transaction():
            for source, item, _ in data:
                store.add_items(source, [item], NOW - timedelta(hours=1))
        runner.group()
        selection = select(store, config, config.digests[0], NOW)
        counter = load_counter("o200k_base", Path(folder), download=False)
        packed = pack(scored_stories(selection), counter, TOKENS)
        carried = {truth[item.id] for p in packed.stories for _, item in p.items}
        store.close()
    return {
        "items": count,
        "true_stories": len(set(truth.values())),
        "packed_distinct_stories": len(carried),
        "naive_distinct_stories": naive_stories(data, counter),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 50_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(scale_one(args.one)))
        return
    if UCI.is_file():
        ranking = ndcg_at_10()
        print(
            f"ranking on UCI ({ranking['items']} headlines): NDCG@10 = "
            f"{ranking['ndcg_at_10']:.3f} (goal >= 0.9); grouping {ranking['grouping_s']:.1f}s"
        )
    else:
        print(f"ranking: skipped, {UCI} not found")
    print("\nscale (fresh process per size; peak = max RSS of the whole process):")
    print(
        f"{'items':>7} {'group':>8} {'select':>8} {'rank':>8} {'pack':>8} {'total':>8} "
        f"{'stories':>8} {'peak MB':>8}"
    )
    for size in args.sizes:
        result = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            print(f"{size:>7} failed: {result.stderr.strip().splitlines()[-1:]}")
            continue
        f = json.loads(result.stdout)
        print(
            f"{size:>7} {f['group_s']:>7.2f}s {f['select_s']:>7.2f}s {f['rank_s']:>7.2f}s "
            f"{f['pack_s']:>7.2f}s {f['total_s']:>7.2f}s {int(f['stories']):>8} "
            f"{f['peak_mb']:>8.0f}"
        )
    print("\ntoken efficiency (100k-token dump):")
    for size in [s for s in args.sizes if s <= 10_000] or args.sizes[:1]:
        e = efficiency(size)
        print(
            f"  {size} items, {e['true_stories']} true stories: packed carries "
            f"{e['packed_distinct_stories']}, naive arrival-order dump carries "
            f"{e['naive_distinct_stories']} "
            f"({e['packed_distinct_stories'] / max(1, e['naive_distinct_stories']):.1f}x)"
        )


if __name__ == "__main__":
    main()
