"""Signals: what makes a story group matter, measured from the selection alone (pure)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digests.model import StoredItem
from digests.select import Selection

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
class StoryGroup:
    story_id: str
    items: tuple[StoredItem, ...]  # the most central item first

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({name for item in self.items for name in item.sources}))


@dataclass(frozen=True)
class ScoredStory:
    group: StoryGroup
    sources: int
    items: int
    weight: float  # the heaviest source weight among its sources
    recency: float  # 1 for the window's end, falling towards its start
    velocity: float  # share of its items in the last quarter of the window
    focus: float  # overlap with the profile's focus, 0..1
    reported: bool  # an earlier digest of this profile cited it
    score: float

    @property
    def status(self) -> str:
        return "developing" if self.reported else "new"


def words(text: str) -> set[str]:
    return {word.strip("'-") for word in _WORD.findall(text.lower())} - _STOP


def build_groups(items: Sequence[StoredItem]) -> list[StoryGroup]:
    """Items by story, each group led by its most central item (deterministic)."""
    by_story: dict[str, list[StoredItem]] = defaultdict(list)
    for item in items:
        by_story[item.story_id or item.id].append(item)
    return [
        StoryGroup(story_id=story_id, items=tuple(_central_first(members)))
        for story_id, members in sorted(by_story.items())
    ]


def _central_first(members: list[StoredItem]) -> list[StoredItem]:
    vocab = [words(item.title) for item in members]

    def centrality(index: int) -> tuple[float, int, str]:
        overlap = sum(len(vocab[index] & other) for j, other in enumerate(vocab) if j != index)
        has_text = 1 if members[index].text else 0
        return (-overlap, -has_text, members[index].id)

    order = sorted(range(len(members)), key=centrality)
    return [members[i] for i in order]


def score_groups(groups: Sequence[StoryGroup], selection: Selection) -> list[ScoredStory]:
    """Score every group; best first, ties broken by story id so the order is stable."""
    focus_words = words(selection.profile.focus)
    span = max((selection.window_to - selection.window_from).total_seconds(), 1.0)
    scored = [_score(group, selection, focus_words, span, selection.window_to) for group in groups]
    scored.sort(key=lambda story: (-story.score, story.group.story_id))
    return scored


def _score(
    group: StoryGroup, selection: Selection, focus_words: set[str], span: float, end: datetime
) -> ScoredStory:
    sources = group.sources
    weight = max((selection.source_weights.get(name, 1.0) for name in sources), default=1.0)
    ages = [max(0.0, (end - item.fetched).total_seconds()) / span for item in group.items]
    recency = 1.0 - min(1.0, min(ages, default=1.0))
    velocity = sum(1 for age in ages if age <= 0.25) / len(ages) if ages else 0.0
    story_words: set[str] = set()
    for item in group.items:
        story_words |= words(item.title)
    focus = len(story_words & focus_words) / len(focus_words) if focus_words else 0.0
    reported = group.story_id in selection.reported_stories
    # Distinct outlets dominate: one outlet repeating itself is not a trend.
    score = (
        len(sources) * weight
        + 0.25 * math.log1p(len(group.items))
        + 0.5 * recency
        + 0.25 * velocity
        + 2.0 * min(focus * 3, 1.0)
    )
    if reported:
        score *= 0.6
    return ScoredStory(
        group=group,
        sources=len(sources),
        items=len(group.items),
        weight=weight,
        recency=recency,
        velocity=velocity,
        focus=focus,
        reported=reported,
        score=round(score, 4),
    )
