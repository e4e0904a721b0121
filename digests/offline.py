"""The offline analyzer: a deterministic ranking of stories and an extractive summary.

It needs no account and no network, so it is the default without an API key and the
labelled fallback when the model cannot answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from digests.signals import ScoredStory

ANALYZER = "offline"
_SUMMARY_CHARS = 400


def lead(text: str, limit: int = _SUMMARY_CHARS) -> str:
    """The first sentences of a text, cut at a sentence end when one is near the limit."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > limit // 3 else cut.rstrip() + "…"


def summary(story: ScoredStory) -> str:
    central = story.window.items[0]
    return lead(central.text) or central.title


def why_it_matters(story: ScoredStory) -> str:
    names = story.window.sources
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    if story.sources > 1:
        reason = f"Reported by {story.sources} sources ({shown})"
    else:
        reason = f"Reported by {shown}"
    if story.items > story.sources:
        reason += f" in {story.items} items"
    if story.reported:
        reason += "; developing since an earlier digest"
    if story.focus > 0:
        reason += "; matches this digest's focus"
    return reason + "."


def rank(stories: Sequence[ScoredStory], max_trends: int) -> list[ScoredStory]:
    """The best stories, best first (the signals already ordered them)."""
    return list(stories[:max_trends])
