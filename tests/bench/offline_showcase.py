"""The offline digest of the 24 shared real-world captures, as a reader gets it.

    python tests/bench/offline_showcase.py            # the top 8 trends as Markdown
    python tests/bench/offline_showcase.py --full     # also each trend's summary

The captures are served from 127.0.0.1 and collected by the real pipeline (fetch, parse,
store, group, select, offline analyzer) with the clock set to the morning after their news
(2022-04-06 07:00 UTC, the default schedule) and the default one-day lookback. The output
is the README's "What the offline digest says" section.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from loopback import FeedServer  # noqa: E402

from core.config import parse_config  # noqa: E402
from core.digest import Digest  # noqa: E402
from core.store import Store  # noqa: E402
from daemon.runner import Runner  # noqa: E402

NOW = datetime(2022, 4, 6, 7, 0, tzinfo=UTC)
FOCUS = "World news: wars and conflicts, diplomacy, elections and governments around the world."
_DATA = Path("shared") / "data" / "feeds" / "real-world"
CAPTURES = (
    Path(os.environ["TRENDFINDER_SHARED_DATA"]) / "feeds" / "real-world"
    if "TRENDFINDER_SHARED_DATA" in os.environ
    else next((p / _DATA for p in REPO.parents if (p / _DATA).is_dir()), REPO.parent / _DATA)
)


@contextmanager
def collected(
    captures: Path, folder: Path, focus: str = FOCUS, now: datetime = NOW
) -> Iterator[tuple[Store, Digest]]:
    """Collect the captures over loopback HTTP, group them and build the offline digest at
    `now`; yields the store (open) and the digest."""
    with FeedServer() as server:
        urls = server.add_directory(captures, "/feeds")
        sources = "\n".join(
            f"  - {{name: '{Path(path).stem}', url: '{url}'}}" for path, url in sorted(urls.items())
        )
        config = parse_config(
            f"storage: {{path: '{folder / 'showcase.db'}'}}\nllm: {{api_key: ''}}\n"
            f"sources:\n{sources}\ndigests:\n"
            f"  - {{name: showcase, focus: '{focus}', deliver: [{{kind: file, "
            f"directory: '{folder / 'out'}'}}]}}\n",
            "showcase config",
            env={},
        )
        with Store.open(config.storage.database) as store:
            report = Runner(config, store, clock=lambda: now).run_once(everything=True)
            yield store, store.digest(report.digests[0])


def showcase(store: Store, digest: Digest, top: int = 8, full: bool = False) -> str:
    lines = [
        f"Window {digest.window.from_:%Y-%m-%d %H:%M} to {digest.window.to:%Y-%m-%d %H:%M} UTC: "
        f"{digest.stats.items} new items from {digest.stats.sources} sources in "
        f"{digest.stats.stories} stories.",
        "",
        "| # | Trend | Why it matters | Sources |",
        "|---|---|---|---|",
    ]
    for trend in digest.trends[:top]:
        sources = story_sources(store, trend.items[0].url) if trend.items else 0
        cell = trend.why_it_matters.replace("|", "\\|")
        title = trend.title.replace("|", "\\|")
        if full:
            cell += "<br>*" + trend.summary.replace("|", "\\|") + "*"
        lines.append(f"| {trend.rank} | {title} | {cell} | {sources} |")
    return "\n".join(lines)


def story_sources(store: Store, url: str) -> int:
    """Distinct sources of the story a trend's first link belongs to, within the digest."""
    row = store.db.execute(
        "SELECT count(DISTINCT s.source) FROM items i JOIN item_sources s ON s.item_id = i.id "
        "WHERE i.story_id = (SELECT story_id FROM items WHERE url = ? LIMIT 1) "
        "AND i.published >= ?",
        [url, (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")],
    ).fetchone()
    return int(row[0])


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also print each trend's summary")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="trendfinder-showcase-") as scratch,
        collected(CAPTURES, Path(scratch)) as (store, digest),
    ):
        print(showcase(store, digest, args.top, args.full))


if __name__ == "__main__":
    main()
