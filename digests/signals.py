"""Signals: what makes a story matter, measured from the selection alone (pure)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from core.items import StoredItem
from digests import focus, meaning
from digests.engagement import story_engagement
from digests.selection import Selection
from digests.similarity import Rarity, centroid, cosine, rarity


@dataclass(frozen=True)
class WindowStory:
    """A story as one digest's window shows it: its pending items, most central first."""

    story_id: str
    items: tuple[StoredItem, ...]  # the most central item first

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({name for item in self.items for name in item.sources}))


@dataclass(frozen=True)
class Spread:
    """How a story travelled: who broke it, when, and how fast other outlets followed."""

    first_source: str
    first_published: datetime
    hours: float  # from the first item to the first item of the last source to pick it up
    fastest: bool  # the fastest-spreading story of this window (three sources or more)

    def rate(self, sources: int) -> float:
        """Outlets gained per hour after the first."""
        return (sources - 1) / max(self.hours, 0.5)


@dataclass(frozen=True)
class ScoredStory:
    window: WindowStory
    sources: int  # distinct sources
    items: int
    weight: float  # the sum of its distinct sources' weights from config
    recency: float  # 1 when its newest item arrived at the window's end, 0 at its start
    velocity: float  # items per hour lately against its sources' usual items per hour
    focus: float  # closeness in meaning to the profile's focus, 0..1 (digests/focus.py)
    focus_facets: tuple[str, ...]  # the focus facets it matches, best first
    reported: bool  # an earlier digest of this profile cited it
    new_sources: int  # sources the earlier digest did not cite (all of them when not reported)
    new_source_names: tuple[str, ...]  # those sources, when reported
    spread: Spread
    score: float

    @property
    def status(self) -> str:
        return "developing" if self.reported else "new"


def window_stories(
    items: Sequence[StoredItem], since: datetime | None = None, words_rarity: Rarity | None = None
) -> list[WindowStory]:
    """Items by story, each story led by its most central item published since `since`
    (deterministic): an older item can support a story but never lead it."""
    by_story: dict[str, list[StoredItem]] = defaultdict(list)
    for item in items:
        by_story[item.story_id or item.id].append(item)
    rare = words_rarity or rarity(item_text(item) for item in items)
    return [
        WindowStory(story_id=story_id, items=tuple(_central_first(members, rare, since)))
        for story_id, members in sorted(by_story.items())
    ]


# An item is judged by its title and the start of its text.
_ITEM_CHARS = 240


def item_text(item: StoredItem) -> str:
    return f"{item.title}\n{item.text[:_ITEM_CHARS]}"


def _central_first(
    members: list[StoredItem], rare: Rarity, since: datetime | None
) -> list[StoredItem]:
    """Members ordered by how close each is to the others (the sum of its cosines with them,
    one dot product with their sum), items published inside the window first."""
    if len(members) == 1:
        return members
    vectors = [rare.vector(item_text(item)) for item in members]
    total = centroid(vectors)

    def centrality(index: int) -> tuple[bool, float, int, str]:
        item = members[index]
        # Less its own unit-length vector: closeness to the others only.
        others = cosine(vectors[index], total) - (1.0 if vectors[index] else 0.0)
        early = since is not None and item.published < since
        return (early, -round(others, 9), 0 if item.text else 1, item.id)

    order = sorted(range(len(members)), key=centrality)
    return [members[i] for i in order]


def score_stories(stories: Sequence[WindowStory], selection: Selection) -> list[ScoredStory]:
    """Score every story; best first, ties broken by story id so the order is stable."""
    wanted = focus.focus_of(selection.profile.focus)
    texts = [
        focus.story_text([item.title for item in story.items], story.items[0].text)
        for story in stories
    ]
    matches = wanted.judge(meaning.embed(texts))
    spreads = [_spread(story) for story in stories]
    rates = [
        spread.rate(len(story.sources)) for story, spread in zip(stories, spreads, strict=True)
    ]
    wide = [i for i, story in enumerate(stories) if len(story.sources) >= _WIDE]
    if wide:
        best = max(wide, key=lambda i: (rates[i], stories[i].story_id))
        spreads[best] = replace(spreads[best], fastest=True)
    scored = [
        _score(story, selection, match, spread)
        for story, match, spread in zip(stories, matches, spreads, strict=True)
    ]
    scored.sort(key=lambda story: (-story.score, story.window.story_id))
    return scored


# The newest quarter of the window is "lately" for velocity.
_LATELY = 0.25
# "Fastest-spreading" is said only of a story that reached this many outlets.
_WIDE = 3


def _spread(story: WindowStory) -> Spread:
    firsts: dict[str, StoredItem] = {}
    for item in sorted(story.items, key=lambda item: (item.published, item.id)):
        for name in item.sources:
            firsts.setdefault(name, item)
    ordered = sorted(firsts.items(), key=lambda pair: (pair[1].published, pair[0]))
    if not ordered:  # items without a source: the story is its lead's
        return Spread("", story.items[0].published, 0.0, fastest=False)
    first_name, first = ordered[0]
    last = ordered[-1][1]
    hours = (last.published - first.published).total_seconds() / 3600
    return Spread(first_name, first.published, hours, fastest=False)


def _score(
    story: WindowStory, selection: Selection, match: focus.Match, spread: Spread
) -> ScoredStory:
    sources = story.sources
    weight = sum(selection.source_weights.get(name, 1.0) for name in sources)
    span = selection.hours * 3600
    end = selection.window_to
    ages = [min(1.0, max(0.0, (end - item.fetched).total_seconds()) / span) for item in story.items]
    recency = 1.0 - min(ages, default=1.0)
    lately = sum(1 for age in ages if age <= _LATELY) / (selection.hours * _LATELY)
    usual = sum(selection.usual_rates.get(name, 0.0) for name in sources)
    velocity = lately / usual if usual > 0 else 0.0
    cited = selection.reported.get(story.story_id)
    fresh = tuple(sorted(set(sources) - cited)) if cited is not None else sources
    # Distinct outlets dominate: one outlet repeating itself is not a trend.
    score = (
        weight
        + 0.25 * math.log1p(len(story.items))
        + 0.5 * recency
        + 0.5 * min(velocity, 1.0)
        + 2.0 * match.relevance
        + 0.5 * story_engagement(story.items, selection.engagement)
    )
    if cited is not None:
        # Already told: worth repeating as developing only when new outlets picked it up.
        score *= 0.8 if fresh else 0.3
    return ScoredStory(
        window=story,
        sources=len(sources),
        items=len(story.items),
        weight=weight,
        recency=recency,
        velocity=velocity,
        focus=match.relevance,
        focus_facets=match.facets,
        reported=cited is not None,
        new_sources=len(fresh),
        new_source_names=fresh if cited is not None else (),
        spread=spread,
        score=round(score, 4),
    )
