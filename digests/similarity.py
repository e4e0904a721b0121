"""Term vectors for "how alike are these two texts", weighted by rarity within a digest.

Hand-written sparse vectors (dicts): a story has tens of items and a summary a few hundred
sentences, far below where a vectorizer library's setup pays for itself.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

Vector = dict[str, float]
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "with",
        "as",
        "at",
        "by",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "how",
        "why",
        "when",
        "where",
        "after",
        "before",
        "over",
        "into",
        "about",
        "more",
        "most",
        "new",
        "says",
        "said",
        "will",
        "would",
        "can",
        "could",
        "may",
        "might",
        "has",
        "have",
        "had",
        "not",
        "but",
        "than",
        "their",
        "they",
        "them",
        "our",
        "your",
        "you",
        "we",
        "us",
        "he",
        "she",
        "his",
        "her",
        "i",
        "me",
        "my",
        "all",
        "any",
        "some",
        "one",
        "two",
        "also",
        "just",
        "only",
        "very",
    ]
)


def words(text: str) -> frozenset[str]:
    return frozenset(_distinct_words(text))


# Every stage reads the same titles and leads: their words are worked out once. Kept as a
# sorted tuple of interned strings: a sixth of the memory of a frozenset of fresh strings
# (180 MB at 50,000 items), and the same order under every hash seed.
@functools.lru_cache(maxsize=200_000)
def _distinct_words(text: str) -> tuple[str, ...]:
    found = {word.strip("'-") for word in _WORD.findall(text.lower())} - _STOP
    return tuple(sorted(map(sys.intern, found)))


@dataclass(frozen=True)
class Rarity:
    """Inverse document frequency of words over one selection's texts."""

    idf: dict[str, float]
    unseen: float  # a word no text of the selection used

    def vector(self, text: str) -> Vector:
        """The text's words weighted by rarity, unit length (empty for a text of stop words)."""
        weights = {word: self.idf.get(word, self.unseen) for word in _distinct_words(text)}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {word: w / norm for word, w in weights.items()} if norm else {}


def rarity(texts: Iterable[str]) -> Rarity:
    counts: Counter[str] = Counter()
    total = 0
    for text in texts:
        total += 1
        counts.update(_distinct_words(text))
    return Rarity(
        idf={word: math.log((1 + total) / (1 + n)) + 1 for word, n in counts.items()},
        unseen=math.log(1 + total) + 1,
    )


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(weight * b.get(word, 0.0) for word, weight in a.items())


def centroid(vectors: Iterable[Vector]) -> Vector:
    """The sum of the vectors (not normalised: a dot product with it sums cosines)."""
    total: Counter[str] = Counter()
    for vector in vectors:
        total.update(vector)
    return dict(total)
