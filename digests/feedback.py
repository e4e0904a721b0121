"""Ranking from readers' votes: weights over a story's sources and title terms (pure).

A bounded online model, explainable feature by feature: each vote nudges the weights of
the voted story's features toward its sign, by how wrong the current weights were about
it (a perceptron with a tanh margin), each weight clipped to +-WEIGHT_CAP and a story's
whole adjustment to +-BONUS_CAP, so votes reorder stories of similar merit and never bury
a story every outlet reports. With no votes the ranking is exactly the signals'.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from core.votes import Vote
from digests.signals import ScoredStory
from digests.similarity import words

LEARNING_RATE = 0.5
WEIGHT_CAP = 1.5
BONUS_CAP = 3.0
_EXPLAINED = 3


def source_feature(name: str) -> str:
    return f"source:{name}"


def term_feature(term: str) -> str:
    return f"term:{term}"


def features(sources: Sequence[str], terms: Sequence[str]) -> dict[str, float]:
    """A story's features and their strength: each source 1, its terms sharing 1 between them."""
    found = {source_feature(name): 1.0 for name in sources}
    share = 1 / math.sqrt(len(terms)) if terms else 0.0
    found.update((term_feature(term), share) for term in terms)
    return found


def story_terms(titles: Sequence[str]) -> tuple[str, ...]:
    terms: set[str] = set()
    for title in titles:
        terms |= words(title)
    return tuple(sorted(terms))


def learn(votes: Sequence[Vote]) -> dict[str, float]:
    """Feature weights from votes in the order they were cast; {} without votes."""
    weights: dict[str, float] = {}
    for vote in votes:
        found = features(vote.sources, vote.terms)
        margin = sum(weights.get(name, 0.0) * strength for name, strength in found.items())
        step = LEARNING_RATE * (vote.value - math.tanh(margin))
        for name, strength in found.items():
            weight = weights.get(name, 0.0) + step * strength
            weights[name] = max(-WEIGHT_CAP, min(WEIGHT_CAP, weight))
    return {name: weight for name, weight in weights.items() if weight}


def contributions(story: ScoredStory, weights: Mapping[str, float]) -> dict[str, float]:
    """What each of the story's features adds to its score under `weights`."""
    titles = [item.title for item in story.window.items]
    found = features(story.window.sources, story_terms(titles))
    return {name: weights[name] * strength for name, strength in found.items() if name in weights}


def bonus(story: ScoredStory, weights: Mapping[str, float]) -> float:
    total = sum(contributions(story, weights).values())
    return max(-BONUS_CAP, min(BONUS_CAP, total))


def rerank(stories: Sequence[ScoredStory], weights: Mapping[str, float]) -> list[ScoredStory]:
    """The stories with their votes' adjustment added, best first; unchanged without weights."""
    if not weights:
        return list(stories)
    adjusted = [
        dataclasses.replace(story, score=round(story.score + bonus(story, weights), 4))
        for story in stories
    ]
    adjusted.sort(key=lambda story: (-story.score, story.window.story_id))
    return adjusted


def why(story: ScoredStory, weights: Mapping[str, float]) -> str:
    """The votes' part in a story's rank, in words; '' when they play none."""
    found = contributions(story, weights)
    strongest = sorted(found.items(), key=lambda pair: (-abs(pair[1]), pair[0]))[:_EXPLAINED]
    strongest = [(name, value) for name, value in strongest if abs(value) >= 0.05]
    if not strongest:
        return ""
    total = bonus(story, weights)
    direction = "up" if total >= 0 else "down"
    parts = ", ".join(
        f"{name.split(':', 1)[0]} '{name.split(':', 1)[1]}' {value:+.2f}"
        for name, value in strongest
    )
    return f"Your votes moved it {direction} by {abs(total):.2f} ({parts})."
