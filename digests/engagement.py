"""Engagement as a signal: how an item's likes, reposts and comments rank among what its
own source (and, for account timelines, its own account) usually gets, and how fast they
grew between polls. Pure: readings in, a 0..1 value per item out.

Normalising per source and account is the point: a popular account's 500 likes are its
ordinary day, a small account's 500 likes are news. Ranks, not raw counts, also put
Hacker News points and X likes on one scale.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence

from core.items import Engagement, EngagementSeen, StoredItem

# Fewer readings than this from one source/account: its ranks are shrunk toward nothing.
CONFIDENT_PEERS = 5


def weight(numbers: Engagement) -> float:
    """One number per reading: a repost spreads a post further than a like."""
    return numbers.likes + 2 * numbers.reposts + numbers.comments


def _rank(value: float, ordered: list[float]) -> float:
    """The share of `ordered` below `value` (ties count half), 0..1."""
    below = bisect_left(ordered, value)
    equal = bisect_right(ordered, value) - below
    return (below + equal / 2) / len(ordered)


def engagement_scores(readings: Sequence[EngagementSeen]) -> dict[str, float]:
    """Per item id: the best, over the sources that saw it, of its engagement's rank among
    its peers (same source and author), averaged with its growth's rank when it was seen
    more than once. 0 for nothing notable, near 1 for the most engaged of its peers."""
    first: dict[tuple[str, str], EngagementSeen] = {}
    last: dict[tuple[str, str], EngagementSeen] = {}
    for reading in sorted(readings, key=lambda r: r.seen_at):
        key = (reading.engagement.item_id, reading.source)
        first.setdefault(key, reading)
        last[key] = reading
    levels: dict[tuple[str, str], list[float]] = defaultdict(list)
    growths: dict[tuple[str, str], list[float]] = defaultdict(list)
    growth_of: dict[tuple[str, str], float] = {}
    for key, reading in last.items():
        peer = (reading.source, reading.engagement.author)
        levels[peer].append(weight(reading.engagement))
        hours = (reading.seen_at - first[key].seen_at).total_seconds() / 3600
        if hours > 0:
            growth_of[key] = (weight(reading.engagement) - weight(first[key].engagement)) / hours
            growths[peer].append(growth_of[key])
    for values in (*levels.values(), *growths.values()):
        values.sort()
    scores: dict[str, float] = {}
    for key, reading in last.items():
        peer = (reading.source, reading.engagement.author)
        confidence = min(1.0, len(levels[peer]) / CONFIDENT_PEERS)
        score = _rank(weight(reading.engagement), levels[peer])
        if key in growth_of:
            score = (score + _rank(growth_of[key], growths[peer])) / 2
        item = key[0]
        scores[item] = max(scores.get(item, 0.0), round(score * confidence, 4))
    return scores


def story_engagement(items: Sequence[StoredItem], scores: Mapping[str, float]) -> float:
    """A story's engagement signal: its most engaged item's score (0 without social items)."""
    return max((scores.get(item.id, 0.0) for item in items), default=0.0)
