"""Signals: what makes a story matter, measured from the selection alone (pure)."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from core.items import StoredItem
from digests.engagement import story_engagement
from digests.selection import Selection

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


@dataclass(frozen=True)
class WindowStory:
    """A story as one digest's window shows it: its pending items, most central first."""

    story_id: str
    items: tuple[StoredItem, ...]  # the most central item first

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({name for item in self.items for name in item.sources}))


@dataclass(frozen=True)
class ScoredStory:
    window: WindowStory
    sources: int  # distinct sources
    items: int
    weight: float  # the sum of its distinct sources' weights from config
    recency: float  # 1 when its newest item arrived at the window's end, 0 at its start
    velocity: float  # items per hour lately against its sources' usual items per hour
    focus: float  # overlap with the profile's focus, 0..1
    reported: bool  # an earlier digest of this profile cited it
    new_sources: int  # sources the earlier digest did not cite (all of them when not reported)
    score: float

    @property
    def status(self) -> str:
        return "developing" if self.reported else "new"


def words(text: str) -> set[str]:
    return {word.strip("'-") for word in _WORD.findall(text.lower())} - _STOP


def window_stories(items: Sequence[StoredItem]) -> list[WindowStory]:
    """Items by story, each story led by its most central item (deterministic)."""
    by_story: dict[str, list[StoredItem]] = defaultdict(list)
    for item in items:
        by_story[item.story_id or item.id].append(item)
    return [
        WindowStory(story_id=story_id, items=tuple(_central_first(members)))
        for story_id, members in sorted(by_story.items())
    ]


def _central_first(members: list[StoredItem]) -> list[StoredItem]:
    """Members ordered by how many title words they share with the others, most first.

    The sum of shared words over all other members equals the sum, over an item's own words,
    of how many other members use each word, so this is linear in the group's size.
    """
    vocab = [words(item.title) for item in members]
    usage: Counter[str] = Counter(word for item_words in vocab for word in item_words)

    def centrality(index: int) -> tuple[int, int, str]:
        overlap = sum(usage[word] - 1 for word in vocab[index])
        has_text = 1 if members[index].text else 0
        return (-overlap, -has_text, members[index].id)

    order = sorted(range(len(members)), key=centrality)
    return [members[i] for i in order]


def score_stories(stories: Sequence[WindowStory], selection: Selection) -> list[ScoredStory]:
    """Score every story; best first, ties broken by story id so the order is stable."""
    focus_words = words(selection.profile.focus)
    scored = [_score(story, selection, focus_words) for story in stories]
    scored.sort(key=lambda story: (-story.score, story.window.story_id))
    return scored


# The newest quarter of the window is "lately" for velocity.
_LATELY = 0.25


def _score(story: WindowStory, selection: Selection, focus_words: set[str]) -> ScoredStory:
    sources = story.sources
    weight = sum(selection.source_weights.get(name, 1.0) for name in sources)
    span = selection.hours * 3600
    end = selection.window_to
    ages = [min(1.0, max(0.0, (end - item.fetched).total_seconds()) / span) for item in story.items]
    recency = 1.0 - min(ages, default=1.0)
    lately = sum(1 for age in ages if age <= _LATELY) / (selection.hours * _LATELY)
    usual = sum(selection.usual_rates.get(name, 0.0) for name in sources)
    velocity = lately / usual if usual > 0 else 0.0
    story_words: set[str] = set()
    for item in story.items:
        story_words |= words(item.title)
    focus = len(story_words & focus_words) / len(focus_words) if focus_words else 0.0
    cited = selection.reported.get(story.story_id)
    new_sources = len(set(sources) - cited) if cited is not None else len(sources)
    # Distinct outlets dominate: one outlet repeating itself is not a trend.
    score = (
        weight
        + 0.25 * math.log1p(len(story.items))
        + 0.5 * recency
        + 0.5 * min(velocity, 1.0)
        + 2.0 * min(focus * 3, 1.0)
        + 0.5 * story_engagement(story.items, selection.engagement)
    )
    if cited is not None:
        # Already told: worth repeating as developing only when new outlets picked it up.
        score *= 0.8 if new_sources else 0.3
    return ScoredStory(
        window=story,
        sources=len(sources),
        items=len(story.items),
        weight=weight,
        recency=recency,
        velocity=velocity,
        focus=focus,
        reported=cited is not None,
        new_sources=new_sources,
        score=round(score, 4),
    )
