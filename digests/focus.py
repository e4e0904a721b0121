"""Focus by meaning: how close a story is to what a digest's reader asked for, and why.

A profile's focus ("Technology for software engineers: software releases, apps, devices,
platforms, AI and security") is cut into facets ("software releases", "apps", ...). A story
matches when its text is close in meaning to the focus or to one of its facets, measured
with the meaning vectors of digests/meaning.py. A shared word is not enough: "world" in a
NASA headline does not make it world news.
tests/bench/bench_focus.py measures precision@10 and recall on tests/data/relevance.json.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import wordfreq
from numpy.typing import NDArray

from digests.meaning import embed

# Cosine similarity (WordLlama, 256 dimensions) at which a story matches a focus or a facet,
# and where relevance saturates; chosen on half of the labelled items
# (tests/bench/bench_focus.py --tune) and scored on the other half.
MATCH = 0.20
FULL = 0.40
# What a story is judged by: its most central titles and the start of its lead text.
_TITLES = 3
_LEAD_CHARS = 300
# Words at least this common (Zipf scale: "news" 5.4, "world" 5.9) say nothing specific.
_EVERYDAY = 5.4
_FACET_SPLIT = re.compile(r"\s*(?:[,;:()]|\band\b|\bor\b|\s[-–—]\s)\s*", re.IGNORECASE)
_FILLER = re.compile(
    r"(?i)^(?:news (?:about|on|of)|stories (?:about|on)|the|about|on|for|of|anything|"
    r"everything|all)\s+"
)


def facets(focus: str) -> tuple[str, ...]:
    """The focus cut at commas, colons and "and"/"or": the parts that say something specific.

    A part made only of everyday words ("World news", "Money") is left to the focus as a
    whole: as a facet of its own it would match any headline using the word ("world record").
    """
    parts: list[str] = []
    for part in _FACET_SPLIT.split(" ".join(focus.split()).rstrip(".")):
        part = _FILLER.sub("", part.strip(" .!?")).strip()
        if part.lower() in {p.lower() for p in parts} or not _specific(part):
            continue
        parts.append(part)
    return tuple(parts)


def _specific(part: str) -> bool:
    return any(wordfreq.zipf_frequency(word, "en") < _EVERYDAY for word in re.findall(r"\w+", part))


@dataclass(frozen=True)
class Focus:
    text: str
    facets: tuple[str, ...]
    vectors: NDArray[np.float32]  # row 0 the whole focus, then one row per facet

    def judge(self, stories: NDArray[np.float32]) -> list[Match]:
        """Each story's closeness to the focus (rows of `stories` are unit vectors)."""
        if not len(stories):
            return []
        sims = stories @ self.vectors.T  # stories x (1 + facets)
        found = []
        for row in sims:
            best = float(row.max())
            order = np.argsort(-row[1:], kind="stable")
            matched = tuple(self.facets[i] for i in order[:2] if row[1 + i] >= MATCH)
            found.append(Match(relevance=_relevance(best), facets=matched))
        return found


@dataclass(frozen=True)
class Match:
    relevance: float  # 0 below MATCH, rising to 1 at FULL similarity
    facets: tuple[str, ...]  # the focus facets it is closest to, best first

    @property
    def matches(self) -> bool:
        return self.relevance > 0


def _relevance(similarity: float) -> float:
    if similarity < MATCH:
        return 0.0
    return min(1.0, 0.1 + 0.9 * (similarity - MATCH) / (FULL - MATCH))


def focus_of(text: str) -> Focus:
    parts = facets(text)
    return Focus(text=text, facets=parts, vectors=embed([text, *parts]))


def story_text(titles: Sequence[str], lead: str) -> str:
    """What a story is judged by: a few central titles and the start of its lead text."""
    return ". ".join([*titles[:_TITLES], lead[:_LEAD_CHARS]])
