"""Story grouping gives the same stories whatever Python's hash seed (set and dict order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: two collection runs over 360 items of 40 invented stories with
# texts, source furniture and shared common words, the second with the first's items as anchors.
_CHILD = """
import json, random
from datetime import UTC, datetime, timedelta
from digests.group import assign_stories
from digests.grouping import GroupInput

rng = random.Random(7)
syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
def word():
    return "".join(rng.choice(syllables) for _ in range(3))
common = "market report week plans city deal talks price team season board".split()
sources = ["wire", "daily", "times", "post", "herald", "globe"]
furniture = {s: f"Subscribe to the {s} newsletter for more {word()} stories" for s in sources}
start = datetime(2024, 5, 6, tzinfo=UTC)
items = []
for number in range(360):
    story = number % 40
    story_rng = random.Random(story)
    own = ["".join(story_rng.choice(syllables) for _ in range(3)) for _ in range(8)]
    title = " ".join(rng.sample(own, 4) + rng.sample(common, 2))
    source = sources[number % len(sources)]
    text = furniture[source] + ". " + " ".join(rng.choice(own + common) for _ in range(40))
    at = start + timedelta(minutes=number)
    items.append(GroupInput(f"it{number:04d}", title, text, source, at))
first = assign_stories(items[:200])
second = assign_stories(items[200:], [(item, first.stories[item.item_id]) for item in items[:200]])
print(json.dumps([first.stories, second.stories, second.merged, second.moved], sort_keys=True))
"""


def grouping_under_hash_seed(seed: str) -> list[dict[str, str]]:
    output = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    result: list[dict[str, str]] = json.loads(output)
    return result


def test_the_same_items_give_the_same_stories_whatever_the_hash_seed() -> None:
    first, second = grouping_under_hash_seed("1"), grouping_under_hash_seed("2")
    assert first == second
    # The batches are real groupings, not every item alone.
    assert len(set(first[0].values())) < 100
