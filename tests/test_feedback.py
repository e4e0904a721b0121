"""Ranking from votes (digests/feedback.py): exactly today's order without votes; bounded,
explained, and learned in the direction of the votes."""

from __future__ import annotations

from datetime import UTC, datetime

from webworld import fill, make_config

from core.clock import utcnow
from core.store import Store
from core.votes import Vote
from daemon.select import select
from digests import feedback
from digests.build import build_offline, scored_stories

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def vote(value: int, sources: tuple[str, ...], terms: tuple[str, ...], n: int = 0) -> Vote:
    return Vote("news", f"story-{n}", value, sources, terms, NOW)


def test_without_votes_the_ranking_and_the_digest_are_exactly_todays(tmp_path):
    config = make_config(tmp_path)
    fill(config)
    now = utcnow()
    with Store.open(config.storage.database, read_only=True) as store:
        selection = select(store, config, config.digests[0], now)
    assert selection.preferences == {}
    signals_only = scored_stories(selection)
    assert feedback.rerank(signals_only, selection.preferences) == signals_only
    built = build_offline(selection, now)
    assert [trend.score for trend in built.digest.trends] == [
        story.score for story in signals_only[: len(built.digest.trends)]
    ]
    assert not any("votes" in trend.why_it_matters for trend in built.digest.trends)


def test_weights_follow_the_votes_and_stay_bounded():
    votes = [vote(1, ("alpha",), ("climate", "bill"), n) for n in range(500)]
    votes += [vote(-1, ("beta",), ("football",), 500 + n) for n in range(500)]
    weights = feedback.learn(votes)
    assert weights["source:alpha"] > 0 and weights["term:climate"] > 0
    assert weights["source:beta"] < 0 and weights["term:football"] < 0
    assert all(abs(weight) <= feedback.WEIGHT_CAP for weight in weights.values())


def test_a_changed_vote_counts_as_the_latest_and_agreeing_votes_count_more():
    up = feedback.learn([vote(1, ("alpha",), ("storm",))])
    changed = feedback.learn([vote(1, ("alpha",), ("storm",)), vote(-1, ("alpha",), ("storm",))])
    assert up["source:alpha"] > 0 > changed["source:alpha"]
    agreeing = feedback.learn([vote(1, ("alpha",), ("storm",), n) for n in range(3)])
    assert agreeing["source:alpha"] > up["source:alpha"], "few votes are shrunk toward zero"
    split = [vote(1, ("alpha",), ("storm",), 0), vote(-1, ("alpha",), ("storm",), 1)]
    assert feedback.learn(split) == {}, "two stories voted both ways say nothing"
