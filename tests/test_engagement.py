"""Engagement normalised per source and account, and its growth between polls, as a signal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.items import Engagement, EngagementSeen
from digests.engagement import engagement_scores

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def seen(
    item: str, author: str, likes: int, hours_ago: float = 1, source: str = "x"
) -> EngagementSeen:
    return EngagementSeen(source, NOW - timedelta(hours=hours_ago), Engagement(item, author, likes))


def test_a_small_accounts_500_likes_outrank_a_popular_accounts_500_likes():
    readings = [seen(f"big{n}", "popular", 5000 + n) for n in range(10)]
    readings += [seen(f"small{n}", "tiny", 5 + n) for n in range(10)]
    readings += [seen("big-post", "popular", 500), seen("small-post", "tiny", 500)]
    scores = engagement_scores(readings)
    assert scores["small-post"] > 0.9
    assert scores["big-post"] < 0.1


def test_growth_between_polls_counts_beside_the_level():
    readings = []
    for n in range(8):
        readings += [seen(f"p{n}", "", 100, hours_ago=2), seen(f"p{n}", "", 100 + n, hours_ago=1)]
    readings += [seen("rising", "", 20, hours_ago=2), seen("rising", "", 90, hours_ago=1)]
    scores = engagement_scores(readings)
    # Few likes yet, but growing fastest of its source: more than a flat, popular post.
    assert scores["rising"] > scores["p0"]


def test_a_lone_reading_is_not_trusted_and_sources_are_ranked_apart():
    scores = engagement_scores([seen("only", "", 10_000, source="hn")])
    assert scores["only"] <= 0.2
    both = [seen(f"h{n}", "", n, source="hn") for n in range(10)]
    both += [seen(f"r{n}", "", 1000 * n, source="reddit") for n in range(10)]
    scores = engagement_scores(both)
    assert scores["h9"] == scores["r9"]
