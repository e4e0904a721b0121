"""Bursts and topic trends, detected statistically against bounded-memory running baselines (pure).

After SigniTrend (Schubert, Weiler, Kriegel, KDD 2014): every term's expected count and its
variance are exponentially weighted moving averages kept in a fixed-size hashed table, so
memory does not grow with the stream or its vocabulary. A term hashes to one bucket in each
of `depth` rows; a bucket shared by several terms holds the largest of their counts, so a
collision can only raise a term's expectation, and a term's significance is the smallest over
its rows (the least colliding one). Significance is

    (x - max(mean, beta)) / (sqrt(variance) + beta)

where `beta` is a bias term that keeps a rare term's first few sightings from looking like a
burst. A story bursts when outlets join it faster than stories usually gain outlets; a topic
trends when a term or entity turns up across more stories than its baseline expects.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import re
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import wordfreq
from numpy.typing import NDArray

from digests.similarity import words

# Half-life of the baselines, in updates (hours): a week, so one busy day is news, a busy
# month is the new normal.
HALF_LIFE = 24 * 7
WIDTH = 1 << 14  # buckets per row
DEPTH = 3  # rows (hash functions)
BETA = 0.5  # the bias term, in stories (or outlets)
# Hourly updates before a baseline is trusted: a day, so a first run does not alert on everything.
WARM_UP = 24
# Words at least this common (Zipf scale: 4.5 is once per 30,000 words) trend only in pairs.
EVERYDAY_ZIPF = 4.5
# Shares are taken of at least this many stories: in a thin stream one story is not 20% news.
MIN_TOTAL = 50
_HEADER = struct.Struct("<4sIIIdd")  # magic, width, depth, updates, alpha, outlet rows
_MAGIC = b"SGT1"
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.-]*")


def _alpha(half_life: float) -> float:
    return 1 - math.exp(math.log(0.5) / half_life)


class HashedBaseline:
    """EWMA mean and variance of per-key counts, in a DEPTH x WIDTH table of fixed size."""

    def __init__(self, width: int = WIDTH, depth: int = DEPTH, half_life: float = HALF_LIFE):
        self.width = width
        self.depth = depth
        self.alpha = _alpha(half_life)
        self.updates = 0
        self.mean: NDArray[np.float64] = np.zeros((depth, width))
        self.var: NDArray[np.float64] = np.zeros((depth, width))

    @property
    def nbytes(self) -> int:
        return int(self.mean.nbytes + self.var.nbytes)

    @property
    def warm(self) -> bool:
        return self.updates >= WARM_UP

    def buckets(self, key: str) -> list[int]:
        # blake2b, not hash(): the table is stored, and Python salts str hashes per process.
        digest = hashlib.blake2b(key.encode(), digest_size=4 * self.depth).digest()
        return [
            int.from_bytes(digest[4 * row : 4 * row + 4], "little") % self.width
            for row in range(self.depth)
        ]

    def significance(self, key: str, count: float, total: float) -> float:
        """How far `count` (of `total` documents) lies above the key's expected share."""
        rows = range(self.depth)
        total = max(total, MIN_TOTAL)
        return min(
            _significance(count, self.mean[row, b] * total, self.var[row, b] * total * total)
            for row, b in zip(rows, self.buckets(key), strict=True)
        )

    def update(self, counts: Mapping[str, float], total: float) -> None:
        """Fold one period's counts (of `total` documents) in, as shares of the total, so a
        stream that doubles its volume does not make every term burst; every key not named
        counted zero this period."""
        observed = np.zeros((self.depth, self.width))
        for key, count in counts.items():
            for row, bucket in enumerate(self.buckets(key)):
                observed[row, bucket] = max(observed[row, bucket], count / max(total, MIN_TOTAL))
        delta = observed - self.mean
        self.mean += self.alpha * delta
        self.var = (1 - self.alpha) * (self.var + self.alpha * delta * delta)
        self.updates += 1


class RunningStat:
    """EWMA mean and variance of one quantity (the outlets a story gains in a window)."""

    def __init__(self, half_life: float = HALF_LIFE * 20) -> None:
        # Many observations per hour (one per active story), so a longer half-life in them.
        self.alpha = _alpha(half_life)
        self.mean = 0.0
        self.var = 0.0

    def significance(self, value: float) -> float:
        return _significance(value, self.mean, self.var)

    def update(self, values: Iterable[float]) -> None:
        for value in values:
            delta = value - self.mean
            self.mean += self.alpha * delta
            self.var = (1 - self.alpha) * (self.var + self.alpha * delta * delta)


def _significance(count: float, mean: float, var: float) -> float:
    return float((count - max(mean, BETA)) / (math.sqrt(max(var, 0.0)) + BETA))


@dataclass
class Baselines:
    """Everything the detectors remember, of a size fixed at creation; stored as one blob."""

    terms: HashedBaseline
    outlets: RunningStat
    hour: datetime | None = None  # the last hour folded in

    @classmethod
    def empty(cls) -> Baselines:
        return cls(HashedBaseline(), RunningStat())

    @property
    def nbytes(self) -> int:
        return self.terms.nbytes + 64

    def to_bytes(self) -> bytes:
        terms = self.terms
        header = _HEADER.pack(_MAGIC, terms.width, terms.depth, terms.updates, terms.alpha, 0.0)
        scalars = struct.pack(
            "<dddd", self.outlets.alpha, self.outlets.mean, self.outlets.var,
            self.hour.timestamp() if self.hour else -1.0,
        )  # fmt: skip
        return header + scalars + terms.mean.tobytes() + terms.var.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Baselines:
        magic, width, depth, updates, alpha, _ = _HEADER.unpack_from(blob)
        if magic != _MAGIC:
            raise ValueError("stored baselines are not in a format this trendfinder reads")
        offset = _HEADER.size
        outlet_alpha, outlet_mean, outlet_var, hour = struct.unpack_from("<dddd", blob, offset)
        offset += 32
        cells = width * depth
        table = np.frombuffer(blob, dtype=np.float64, count=2 * cells, offset=offset)
        terms = HashedBaseline(width, depth)
        terms.alpha, terms.updates = alpha, updates
        terms.mean = table[:cells].reshape(depth, width).copy()
        terms.var = table[cells:].reshape(depth, width).copy()
        outlets = RunningStat()
        outlets.alpha, outlets.mean, outlets.var = outlet_alpha, outlet_mean, outlet_var
        when = datetime.fromtimestamp(hour, tz=UTC) if hour >= 0 else None
        return cls(terms, outlets, when)


# The stream as the detectors see it ----------------------------------------------------------


@dataclass(frozen=True)
class StoryActivity:
    """One story lately: its titles, and when each outlet first carried it."""

    story_id: str
    titles: tuple[str, ...]
    joined: Mapping[str, datetime]  # source -> first sight on the story
    texts: tuple[str, ...] = ()  # the start of each item's text, for keyword rules

    def mentions(self, phrase: str) -> bool:
        """The phrase as whole words in a title or text, case-insensitively."""
        pattern = re.compile(rf"(?<!\w){re.escape(phrase.casefold())}(?!\w)")
        return any(pattern.search(text.casefold()) for text in (*self.titles, *self.texts))


@functools.cache
def _everyday(word: str) -> bool:
    """A word too common in English to make a topic alone ("way", "cost", "latest")."""
    # The small list (words down to Zipf 3) answers exactly as the large one at this bar,
    # in 7 MB instead of the 28 MB the large one kept in the daemon.
    return wordfreq.zipf_frequency(word, "en", wordlist="small") >= EVERYDAY_ZIPF


def terms(title: str) -> set[str]:
    """A title's rarer words and its adjacent word pairs ("ai act"), stop words left out."""
    tokens = [token.lower().strip("'.-") for token in _TOKEN.findall(title)]
    kept = [token if words(token) else "" for token in tokens]
    pairs = {f"{a} {b}" for a, b in itertools.pairwise(kept) if a and b}
    return {token for token in kept if len(token) > 2 and not _everyday(token)} | pairs


def story_terms(story: StoryActivity) -> set[str]:
    found: set[str] = set()
    for title in story.titles:
        found |= terms(title)
    return found


def term_counts(stories: Iterable[StoryActivity]) -> dict[str, int]:
    """Distinct stories carrying each term."""
    counts: dict[str, int] = defaultdict(int)
    for story in stories:
        for term in story_terms(story):
            counts[term] += 1
    return dict(counts)


def outlets_joined(story: StoryActivity, since: datetime, until: datetime) -> int:
    return sum(1 for at in story.joined.values() if since <= at <= until)


@dataclass(frozen=True)
class StoryBurst:
    story_id: str
    outlets: int  # outlets that joined within the window
    total_outlets: int
    significance: float


@dataclass(frozen=True)
class TopicBurst:
    term: str
    stories: tuple[str, ...]  # story ids carrying it
    significance: float


@dataclass(frozen=True)
class BurstSettings:
    window: timedelta = timedelta(hours=2)  # new outlets are counted over this long
    min_outlets: int = 3  # ...and a story bursts at this many (at least)
    z: float = 0.0  # ...and this many standard deviations above stories' usual gain (0: off)
    topic_window: timedelta = timedelta(hours=24)
    topic_stories: int = 3  # a topic trends across at least this many stories
    topic_z: float = 3.0  # ...at this significance over its baseline


def story_bursts(
    stories: Sequence[StoryActivity], baselines: Baselines, now: datetime, settings: BurstSettings
) -> list[StoryBurst]:
    found = []
    for story in stories:
        gained = outlets_joined(story, now - settings.window, now)
        if gained < settings.min_outlets:
            continue
        significance = baselines.outlets.significance(gained)
        if settings.z and significance < settings.z:
            continue
        found.append(StoryBurst(story.story_id, gained, len(story.joined), significance))
    found.sort(key=lambda burst: (-burst.outlets, burst.story_id))
    return found


def topic_bursts(
    stories: Sequence[StoryActivity], baselines: Baselines, now: datetime, settings: BurstSettings
) -> list[TopicBurst]:
    """Terms across at least `topic_stories` stories, from at least two outlets, well above
    their baseline; a term already covered by a longer trending phrase is left out."""
    if not baselines.terms.warm:
        return []
    recent = [
        s for s in stories if any(at >= now - settings.topic_window for at in s.joined.values())
    ]
    carriers: dict[str, list[StoryActivity]] = defaultdict(list)
    for story in recent:
        for term in story_terms(story):
            carriers[term].append(story)
    found = []
    for term, carrying in carriers.items():
        if len(carrying) < settings.topic_stories:
            continue
        outlets = {source for story in carrying for source in story.joined}
        if len(outlets) < 2:
            continue
        significance = baselines.terms.significance(term, len(carrying), len(recent))
        if significance >= settings.topic_z:
            ids = tuple(sorted(story.story_id for story in carrying))
            found.append(TopicBurst(term, ids, significance))
    found.sort(key=lambda topic: (-topic.significance, topic.term))
    # "ai act" trending makes "act" trending across the same stories redundant.
    kept: list[TopicBurst] = []
    for topic in found:
        if any(topic.term in other.term.split() and set(topic.stories) <= set(other.stories)
               for other in found if other is not topic and " " in other.term):  # fmt: skip
            continue
        kept.append(topic)
    return kept


def fold(
    baselines: Baselines, stories: Sequence[StoryActivity], now: datetime, settings: BurstSettings
) -> bool:
    """Fold the current counts into the baselines once per hour; True when it did.

    Call after detecting, so the hour's counts are judged against what came before them.
    An hour the daemon was not running is simply not observed (the EWMA does not decay).
    """
    hour = now.replace(minute=0, second=0, microsecond=0)
    if baselines.hour is not None and hour <= baselines.hour:
        return False
    recent = [
        s for s in stories if any(at >= now - settings.topic_window for at in s.joined.values())
    ]
    baselines.terms.update(term_counts(recent), len(recent))
    baselines.outlets.update(
        outlets_joined(story, now - settings.window, now)
        for story in stories
        if any(at >= now - settings.window for at in story.joined.values())
    )
    baselines.hour = hour
    return True


@dataclass(frozen=True)
class AlertCaps:
    per_hour: int = 3  # alerts per profile per hour, at most
    repeat_factor: float = 2.0  # a story alerts again once its outlets reach this multiple


def worth_alerting(
    sizes: Mapping[str, int], alerted: Mapping[str, int], sent_last_hour: int, caps: AlertCaps
) -> list[str]:
    """The subjects (story ids, topics) to alert on now, in the order given: each once, again
    only on a material change (its size, outlets of a story or stories of a topic, reached
    `repeat_factor` times what its last alert said), within the hourly cap.

    `alerted` holds each alerted subject's size at its last alert.
    """
    due = [
        subject
        for subject, size in sizes.items()
        if subject not in alerted or size >= caps.repeat_factor * alerted[subject]
    ]
    return due[: max(0, caps.per_hour - sent_last_hour)]
