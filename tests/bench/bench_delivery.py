"""What rendering and the file target's archive cost, side by side, as digests pile up.

    python tests/bench/bench_delivery.py [--archive 365,3650]

Times each renderer on an ordinary digest (8 trends) and on a huge one (60 trends with
5,000-character summaries, the Slack splitting case), then the file target's full write
(JSON, Markdown, HTML, and the archive index and Atom feed rebuilt from every JSON file in
the folder) with a year and with ten years of daily digests already archived.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sample_digests as samples

from core.config import FileTarget
from digests import blockkit, render
from digests.deliver import send
from digests.deliver.files import atomic_write


def timed(repeat: int, action: Callable[..., object], *args: object) -> float:
    """Best of `repeat` runs of action(*args), in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        action(*args)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", default="365,3650", help="archived digests, comma-separated")
    args = parser.parse_args()

    ordinary = samples.digest(tuple(samples.trend(n, items=6) for n in range(1, 9)))
    huge = samples.huge(trends=60, summary_chars=5000)
    print("renderer            8 trends   60 trends x 5,000 chars")
    for name, renderer in (
        ("markdown", render.markdown),
        ("text", render.text),
        ("html", render.html),
        ("slack blocks", blockkit.messages),
    ):
        small, large = timed(20, renderer, ordinary), timed(5, renderer, huge)
        print(f"{name:<18} {small:7.2f} ms  {large:8.2f} ms")
    print(f"slack messages for the huge digest: {len(blockkit.messages(huge, archive=True))}")

    print("\nfile target write (3 files + index + Atom feed), by digests already archived")
    for count in (int(n) for n in args.archive.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            target = FileTarget(kind="file", directory=Path(scratch))
            folder = Path(scratch) / ordinary.profile
            for day in range(count):
                old = ordinary.model_copy(
                    update={
                        "id": f"old-{day}",
                        "created_at": ordinary.created_at - timedelta(days=day + 1),
                    }
                )
                atomic_write(folder / f"old-{day}.json", render.json_text(old))
            took = timed(3, send, ordinary, target)
            index_kb = (folder / "index.html").stat().st_size / 1024
            feed_kb = (folder / "feed.atom").stat().st_size / 1024
            print(
                f"{count:>6} archived: {took:8.1f} ms "
                f"(index.html {index_kb:,.0f} KB, feed.atom {feed_kb:,.0f} KB)"
            )


if __name__ == "__main__":
    main()
