"""Feed furniture: the lines and sentences a source repeats across its items, learnt from its
own items and stripped from every text ("See all our coronavirus coverage", "View Entire
Post ›", "Continue reading...", sign-up prompts).

Pure: learnt from the items at hand. Hand-written, because what counts is repetition within
one source, which no extraction library measures on feed summaries (trafilatura and justext
judge a single HTML page).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from core.items import StoredItem

# A unit repeated in this many items of one source is furniture, not reporting.
MIN_REPEATS = 3
_EDGE = 800
# Furniture is a prompt or a label, never a paragraph.
_LONGEST = 200
_SENTENCE_END = re.compile(r"(?<=[.!?…›])\s+(?=[\"“‘'(\[A-Z0-9])")
_KEY = re.compile(r"[\W_]+")


def sentences(line: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(line.strip()) if part.strip()]


def units(text: str) -> Iterator[str]:
    """A text's lines, each cut into sentences."""
    for line in text.splitlines():
        yield from sentences(line)


def _key(unit: str) -> str:
    """What two repetitions of a unit share; empty for a unit too long to be furniture."""
    return "" if len(unit) > _LONGEST else _KEY.sub(" ", unit.lower()).strip()


@dataclass(frozen=True)
class Furniture:
    by_source: dict[str, frozenset[str]]  # source -> the keys of its repeated units

    def strip(self, item: StoredItem) -> StoredItem:
        """The item with its sources' furniture taken out of its text (lines kept)."""
        sets = [self.by_source[name] for name in item.sources if self.by_source.get(name)]
        repeated = sets[0] if len(sets) == 1 else frozenset().union(*sets)
        if not repeated:
            return item
        lines = []
        for line in item.text.splitlines():
            kept = [unit for unit in sentences(line) if _key(unit) not in repeated]
            if kept:
                lines.append(" ".join(kept))
        return replace(item, text="\n".join(lines))


def learn(items: Sequence[StoredItem]) -> Furniture:
    """The units each source repeats in MIN_REPEATS or more of its items."""
    seen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in items:
        # Furniture sits at a text's start and end; the middle of a long article is skipped
        # so learning stays linear in the number of items, not in their length.
        text = (
            item.text
            if len(item.text) <= 2 * _EDGE
            else item.text[:_EDGE] + "\n" + item.text[-_EDGE:]
        )
        keys = {key for unit in units(text) if (key := _key(unit))}
        for name in item.sources:
            for key in keys:
                seen[name][key] += 1
    return Furniture(
        {
            # One-word units are headings or cut abbreviations ("Dr."): harmless, and kept.
            name: frozenset(k for k, n in counts.items() if n >= MIN_REPEATS and " " in k)
            for name, counts in seen.items()
        }
    )


def strip_all(items: Sequence[StoredItem]) -> tuple[StoredItem, ...]:
    """The items with the furniture their sources repeat among them taken out."""
    furniture = learn(items)
    return tuple(furniture.strip(item) for item in items)
