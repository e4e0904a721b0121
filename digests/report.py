"""A report's reflection (pure): the period's main movements, what is fading, what to watch,
from the trends' trajectories and the topic trends. The offline analyzer's statistical
version of the model's "deep reflection"; with the model it sits beside the model's trends.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.digest import TopicTrend, Trend
from digests.timeline import WIDE

SHOWN = 4


def _outlets(trend: Trend) -> int:
    if trend.coverage is None:
        return len({item.source for item in trend.items})
    return 1 + len(trend.coverage.followed)


def _named(trends: Sequence[Trend]) -> str:
    return "; ".join(
        f"{' '.join(trend.title.split())} "
        f"({trend.timeline.trajectory if trend.timeline else 'no timeline'}, "
        f"{_outlets(trend)} outlets)"
        for trend in trends[:SHOWN]
    )


def reflect(trends: Sequence[Trend], topics: Sequence[TopicTrend]) -> tuple[str, ...]:
    def moving(trend: Trend) -> str:
        return trend.timeline.trajectory if trend.timeline else "steady"

    main = [t for t in trends if moving(t) in ("new", "rising") and _outlets(t) >= WIDE]
    main = main or [t for t in trends if moving(t) != "fading"][:SHOWN]
    fading = [t for t in trends if moving(t) == "fading"]
    watch = [t for t in trends if moving(t) in ("new", "rising") and t not in main]
    lines = [f"Main movements: {_named(main)}." if main else "Main movements: none stood out."]
    if fading:
        lines.append(f"Fading: {_named(fading)}.")
    watched = [_named(watch)] if watch else []
    watched += [f"'{topic.term}' across {topic.stories} stories" for topic in topics[:SHOWN]]
    if watched:
        lines.append(f"To watch: {'; '.join(watched)}.")
    return tuple(lines)
