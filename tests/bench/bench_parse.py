"""Feed parsing alone: CPU seconds per MB of feed, the fast path against feedparser.

    python tests/bench/bench_parse.py [--rounds 3]

Every shared real-world capture goes through sources.parse.parse_feed (items included:
text, identity, dates), once as it runs (the lxml fast path where it applies) and once
with the fast path turned off (feedparser for every feed); best of `--rounds`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO)]

import sources.parse  # noqa: E402

CAPTURES = REPO.parent / "shared" / "data" / "feeds" / "real-world"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def cpu_seconds(bodies: list[bytes], rounds: int) -> tuple[float, int]:
    best, items = float("inf"), 0
    for _ in range(rounds):
        started = time.process_time()
        items = sum(
            len(sources.parse.parse_feed(body, "https://x.example/feed", {}, NOW, source="s").items)
            for body in bodies
        )
        best = min(best, time.process_time() - started)
    return best, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bodies = [path.read_bytes() for path in sorted(CAPTURES.glob("*.xml"))]
    megabytes = sum(map(len, bodies)) / 1e6
    print(f"{len(bodies)} captures, {megabytes:.1f} MB; load average {os.getloadavg()[0]:.1f}")
    fast, items = cpu_seconds(bodies, args.rounds)
    sources.parse.read_feed = lambda *args: None  # feedparser for every feed
    slow, same = cpu_seconds(bodies, args.rounds)
    assert items == same
    for label, seconds in (("fast path where it applies", fast), ("feedparser only", slow)):
        print(
            f"{label:<28} {seconds:6.3f} CPU-s  {seconds / megabytes:6.3f} CPU-s/MB  {items} items"
        )
    print(f"feedparser / fast path: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
