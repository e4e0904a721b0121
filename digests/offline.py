"""The offline analyzer: a deterministic ranking of stories, an extractive summary and a
"why it matters" written from the signals.

It needs no account and no network, so it is the default without an API key and the
labelled fallback when the model cannot answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digests.boilerplate import units
from digests.signals import ScoredStory
from digests.similarity import Rarity, Vector, cosine

ANALYZER = "offline"
_SUMMARY_CHARS = 400
# Sentences read per item, and items read per story, for the summary.
_SENTENCES = 6
_READ_ITEMS = 30
# A sentence this close to another outlet's text says the same thing.
_AGREES = 0.25
# A second sentence must add something: no closer than this to the first.
_REPEATS = 0.5
_SHORTEST = 30  # characters: shorter units are labels, not sentences
_ENDINGS = (".", "!", "?", "”", '"', "’", "'", ")")


def _finished(sentence: str) -> str:
    """A standfirst or caption line read as a sentence: it ends with a full stop."""
    return sentence if sentence.endswith(_ENDINGS) else sentence + "."


def lead(text: str, limit: int = _SUMMARY_CHARS) -> str:
    """The first sentences of a text, cut at a sentence end when one is near the limit."""
    text = " ".join(_finished(" ".join(line.split())) for line in text.splitlines() if line.strip())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > limit // 3 else cut.rstrip() + "…"


def summary(story: ScoredStory, rare: Rarity) -> str:
    """One or two sentences that most outlets' texts agree on (extractive).

    Each candidate sentence scores how many other sources have a title or sentence close
    to it (the degree of a LexRank graph, counted once per source so one chatty outlet does
    not outvote the rest), plus its closeness to the lead's headline; ties go to earlier
    sentences of more central items.
    """
    central = story.window.items[0]
    items = story.window.items[:_READ_ITEMS]
    candidates: list[tuple[str, str, Vector, int]] = []  # (sentence, source, vector, order)
    witnesses: list[tuple[str, Vector]] = []  # (source, vector) of every title and sentence
    for item in items:
        source = item.sources[0] if item.sources else item.id
        witnesses.append((source, rare.vector(item.title)))
        for sentence in list(units(item.text))[:_SENTENCES]:
            vector = rare.vector(sentence)
            witnesses.append((source, vector))
            if _SHORTEST <= len(sentence) <= _SUMMARY_CHARS and sentence != item.title:
                candidates.append((sentence, source, vector, len(candidates)))
    # Whole sentences read better than standfirsts and captions, when there are any.
    finished = [c for c in candidates if c[0].endswith(_ENDINGS)]
    candidates = finished if len({c[1] for c in finished}) >= 2 else candidates
    if len({source for _, source, _, _ in candidates}) < 2 or story.sources < 2:
        return lead(central.text) or central.title

    headline = rare.vector(central.title)

    def agreement(candidate: tuple[str, str, Vector, int]) -> float:
        _, source, vector, _ = candidate
        best: dict[str, float] = {}
        for other, seen in witnesses:
            if other != source:
                best[other] = max(best.get(other, 0.0), cosine(vector, seen))
        agreeing = sum(1.0 for value in best.values() if value >= _AGREES)
        # Closeness to the lead's headline keeps a two-outlet story's summary on its topic.
        return agreeing + cosine(vector, headline) + 0.1 * sum(best.values()) / max(len(best), 1)

    ranked = sorted(candidates, key=lambda c: (-agreement(c), c[3]))
    first = ranked[0]
    chosen = [first[0]]
    for sentence, _, vector, _ in ranked[1:3]:
        room = len(first[0]) + 1 + len(sentence) <= _SUMMARY_CHARS
        if room and cosine(vector, first[2]) < _REPEATS and agreement(first) >= 1:
            chosen.append(sentence)
            break
    return " ".join(_finished(sentence) for sentence in chosen)


def _when(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC on {moment.day} {moment:%B}"


def _hours(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} minutes"
    return "1 hour" if round(hours) == 1 else f"{round(hours)} hours"


def _listed(names: Sequence[str], most: int = 3) -> str:
    shown = list(names[:most])
    if len(names) > most:
        return ", ".join(shown) + f" and {len(names) - most} more"
    return " and ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else shown[0]


def why_it_matters(story: ScoredStory) -> str:
    """Who broke it and when, how fast it spread, what is new, and why it is for this reader."""
    spread = story.spread
    parts = []
    if story.sources > 1:
        more = story.sources - 1
        outlets = "outlet" if more == 1 else "outlets"
        told = f"First reported by {spread.first_source} at {_when(spread.first_published)}"
        told += f"; {more} more {outlets} in {_hours(spread.hours)}"
        if spread.fastest:
            told += ", the fastest-spreading story of this digest"
        parts.append(told)
    else:
        name = spread.first_source or "one source"
        only = f"Only {name} has it so far ({_when(spread.first_published)}"
        parts.append(only + (f", {story.items} items)" if story.items > 1 else ")"))
    if story.reported:
        news = f"Developing since an earlier digest: {story.items} new items"
        if story.new_source_names:
            news += f", now also reported by {_listed(story.new_source_names)}"
        newest = max(story.window.items, key=lambda item: (item.published, item.id))
        parts.append(f"{news}; latest: “{' '.join(newest.title.split())}”")
    if story.focus_facets:
        parts.append(f"Matches your focus on {_listed(story.focus_facets)}")
    elif story.focus > 0:
        parts.append("Close to this digest's focus")
    return ". ".join(parts) + "."


def rank(stories: Sequence[ScoredStory], max_trends: int) -> list[ScoredStory]:
    """The best stories, best first (the signals already ordered them)."""
    return list(stories[:max_trends])
