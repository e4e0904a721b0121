"""Precision@10 of the focus after 0, 10, 30 and 100 simulated votes (digests/feedback.py).

    python tests/bench/feedback_precision.py

The labelled UCI headlines (44 stories, each with a category) stand in for a reader who
wants technology (category t) under a profile whose focus says only "the news that matters
today": each simulated digest is 20 stories with 1-8 headlines each, ranked by the signals
plus the votes so far; the reader votes up the technology trends of its top 10 and down the
rest, until N votes are cast. Cross-validated by story: votes are cast on digests of one
half of the stories and precision@10 is scored on 30 digests of the other half, both ways.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import csv

from bench.uci import UCI_PATH

from core.config import DigestProfile, FileTarget
from core.items import StoredItem
from core.votes import Vote
from digests import feedback
from digests.build import scored_stories
from digests.selection import Selection

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
VOTES = (0, 10, 30, 100)
PROFILE = DigestProfile(
    name="reader", focus="the news that matters today", deliver=(FileTarget(kind="file"),)
)
TOP = 10


def load() -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    """story -> (category, [(id, title, publisher)])."""
    stories: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}
    with UCI_PATH.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            entry = stories.setdefault(row["STORY"], (row["CATEGORY"], []))
            entry[1].append((row["ID"], row["TITLE"], row["PUBLISHER"]))
    return stories


def window(stories, names: list[str], rng: random.Random, weights) -> Selection:
    items = []
    for story in rng.sample(names, min(20, len(names))):
        for item_id, title, publisher in rng.sample(stories[story][1], rng.randint(1, 8)):
            fetched = NOW - timedelta(hours=rng.uniform(0, 24))
            items.append(
                StoredItem(
                    item_id,
                    f"https://x.example/{item_id}",
                    title,
                    "",
                    fetched,
                    fetched,
                    (publisher,),
                    story,
                )
            )
    return Selection(
        PROFILE, NOW - timedelta(days=1), NOW, tuple(items), (), {}, {}, {}, preferences=weights
    )


def top(selection: Selection) -> list[str]:
    return [story.window.story_id for story in scored_stories(selection)[:TOP]]


def precision(stories, names, weights, seed: int) -> float:
    rng = random.Random(seed)
    shown = [top(window(stories, names, rng, weights)) for _ in range(30)]
    return sum(stories[s][0] == "t" for ids in shown for s in ids) / sum(map(len, shown))


def main() -> None:
    stories = load()
    by_category = defaultdict(list)
    for name, (category, _) in sorted(stories.items()):
        by_category[category].append(name)
    # Folds by story, each with its share of every category.
    folds: list[list[str]] = [[], []]
    for names in by_category.values():
        for n, name in enumerate(names):
            folds[n % 2].append(name)
    print(
        f"{len(stories)} stories; technology: {len(by_category['t'])}; "
        f"folds {list(map(len, folds))}"
    )
    for count in VOTES:
        scores = []
        for train, test in ((0, 1), (1, 0)):
            rng = random.Random(count)
            votes: list[Vote] = []
            while len(votes) < count:
                weights = feedback.learn(votes)
                for story in top(window(stories, folds[train], rng, weights)):
                    if len(votes) == count:
                        break
                    value = 1 if stories[story][0] == "t" else -1
                    titles = [title for _, title, _ in stories[story][1]]
                    sources = sorted({p for _, _, p in stories[story][1]})
                    votes.append(
                        Vote(
                            "reader",
                            story,
                            value,
                            tuple(sources),
                            feedback.story_terms(titles[:8]),
                            NOW,
                        )
                    )
            scores.append(precision(stories, folds[test], feedback.learn(votes), 1000 + test))
        print(
            f"  after {count:>3} votes: precision@10 of the focus {sum(scores) / 2:.2f} "
            f"(folds {scores[0]:.2f}, {scores[1]:.2f})"
        )


if __name__ == "__main__":
    main()
