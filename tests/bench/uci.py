"""Load the labelled UCI headlines (shared test data, read by path, never copied)."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.items import NewItem
from digests.grouping import GroupInput

_REPO_ROOT = Path(__file__).resolve().parents[2]
_RELATIVE = Path("shared") / "data" / "stories" / "uci-news-dev.csv"
# CI clones the repo with shared/ beside it; a developer worktree sits one folder deeper.
UCI_PATH = next(
    (folder / _RELATIVE for folder in _REPO_ROOT.parents if (folder / _RELATIVE).is_file()),
    _REPO_ROOT.parent / _RELATIVE,
)
# The file's timestamps are shuffled on purpose, so every item gets the same one.
SAME_DAY = datetime(2014, 3, 10, tzinfo=UTC)


@dataclass(frozen=True)
class LabelledItem:
    item: GroupInput
    story: str


def load_uci(path: Path = UCI_PATH) -> list[LabelledItem]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            LabelledItem(
                GroupInput(
                    item_id=row["ID"],
                    title=row["TITLE"],
                    text="",
                    source=row["PUBLISHER"],
                    published=SAME_DAY,
                ),
                row["STORY"],
            )
            for row in csv.DictReader(handle)
        ]


def small_sparse_days(labelled: list[LabelledItem], days: int) -> list[list[LabelledItem]]:
    """Days of 30 stories with 1-3 articles each, sampled from the labelled headlines."""
    by_story: dict[str, list[LabelledItem]] = defaultdict(list)
    for entry in labelled:
        by_story[entry.story].append(entry)
    sampled = []
    for seed in range(days):
        rng = random.Random(seed)
        day: list[LabelledItem] = []
        for story in rng.sample(sorted(by_story), 30):
            day += rng.sample(by_story[story], rng.randint(1, 3))
        sampled.append(day)
    return sampled


def stored_headline(entry: GroupInput, published: datetime) -> NewItem:
    """A headline as a wire source's collect stores it: no text, its id for link and hash."""
    return NewItem(
        id=entry.item_id,
        url=f"https://wire.example/{entry.item_id}",
        title=entry.title,
        text="",
        published=published,
        content_hash=entry.item_id,
    )
