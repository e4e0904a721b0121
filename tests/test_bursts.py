"""Bursts and topic trends against bounded running baselines, and the alert caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import wordfreq

from digests import bursts

NOW = datetime(2026, 12, 2, 12, 5, tzinfo=UTC)
MIN = timedelta(minutes=1)


def story(story_id: str, title: str, *joins: tuple[str, float]) -> bursts.StoryActivity:
    """joins: (source, minutes before NOW)."""
    return bursts.StoryActivity(
        story_id, (title,), {source: NOW - MIN * minutes for source, minutes in joins}
    )


def warmed(hours: int = 48) -> bursts.Baselines:
    """Baselines that watched a quiet stream of ordinary one-outlet stories for two days."""
    baselines = bursts.Baselines.empty()
    quiet = [
        story(f"q{n}", f"Local council meets about parking {n}", ("herald", 30)) for n in range(60)
    ]
    for hour in range(hours):
        bursts.fold(baselines, quiet, NOW - timedelta(hours=hours - hour), bursts.BurstSettings())
    return baselines


def test_a_story_bursts_when_three_outlets_join_within_the_window():
    settings = bursts.BurstSettings()
    sudden = story("s", "Dam breach", ("wire", 20), ("herald", 12), ("ledger", 3))
    two = story("t", "Bridge closes", ("wire", 20), ("herald", 12))
    slow = story("u", "Recall vote", ("wire", 600), ("herald", 300), ("ledger", 3))
    found = bursts.story_bursts([sudden, two, slow], warmed(), NOW, settings)
    assert [(burst.story_id, burst.outlets) for burst in found] == [("s", 3)]


def test_one_outlet_flooding_a_story_never_bursts():
    flood = bursts.StoryActivity("f", tuple(f"Live: update {n}" for n in range(40)), {"blog": NOW})
    assert bursts.story_bursts([flood], warmed(), NOW, bursts.BurstSettings()) == []


def test_a_term_across_several_stories_from_different_outlets_trends():
    baselines = warmed()
    outages = [
        story(f"o{n}", f"Nationwide {what} outage strands customers", (source, 60 * n + 5))
        for n, (what, source) in enumerate(
            [("payments", "wire"), ("airline", "herald"), ("rail", "ledger"), ("phone", "post")]
        )
    ]
    quiet = [
        story(f"q{n}", f"Local council meets about parking {n}", ("herald", 30)) for n in range(60)
    ]
    found = bursts.topic_bursts(outages + quiet, baselines, NOW, bursts.BurstSettings())
    assert found, "the outage topic was not found"
    assert all(set(topic.stories) == {"o0", "o1", "o2", "o3"} for topic in found)
    assert any("outage" in topic.term for topic in found)
    # The usual vocabulary of the stream is not a trend.
    assert not any("parking" in topic.term or "council" in topic.term for topic in found)


def test_no_topic_trends_before_the_baselines_have_watched_a_day():
    fresh = bursts.Baselines.empty()
    outages = [story(f"o{n}", "Nationwide outage", (f"s{n}", 5)) for n in range(5)]
    assert bursts.topic_bursts(outages, fresh, NOW, bursts.BurstSettings()) == []


def test_baselines_keep_their_size_whatever_the_stream_and_survive_storage():
    baselines = bursts.Baselines.empty()
    size, blob = baselines.nbytes, len(baselines.to_bytes())
    for hour in range(500):
        counts = {f"term-{hour}-{n}": 1 + n % 3 for n in range(400)}  # 200,000 distinct terms
        baselines.terms.update(counts, 400)
    baselines.hour = NOW
    assert baselines.nbytes == size
    stored = baselines.to_bytes()
    assert len(stored) == blob
    again = bursts.Baselines.from_bytes(stored)
    assert again.hour == NOW and again.terms.updates == 500
    assert again.terms.significance("term-499-2", 3, 400) == baselines.terms.significance(
        "term-499-2", 3, 400
    )


def test_folding_happens_once_per_hour():
    baselines = bursts.Baselines.empty()
    settings = bursts.BurstSettings()
    assert bursts.fold(baselines, [], NOW, settings)
    assert not bursts.fold(baselines, [], NOW + 10 * MIN, settings)
    assert bursts.fold(baselines, [], NOW + 60 * MIN, settings)
    assert baselines.terms.updates == 2


def test_a_story_alerts_once_until_its_outlets_double_and_alerts_are_capped_per_hour():
    caps = bursts.AlertCaps(per_hour=2, repeat_factor=2.0)
    assert bursts.worth_alerting({"a": 3}, {"a": 3}, 0, caps) == []
    assert bursts.worth_alerting({"a": 5}, {"a": 3}, 0, caps) == []
    assert bursts.worth_alerting({"a": 6}, {"a": 3}, 0, caps) == ["a"]
    many = {"b": 3, "c": 3, "d": 3}
    assert bursts.worth_alerting(many, {}, 0, caps) == ["b", "c"]
    assert bursts.worth_alerting(many, {}, 2, caps) == []


def test_everyday_words_are_those_of_the_full_english_list() -> None:
    # The small list the daemon keeps loaded judges every word as the large list does.
    large = wordfreq.get_frequency_dict("en", wordlist="large")
    near = [w for w in large if wordfreq.zipf_frequency(w, "en", wordlist="large") >= 4.0]
    assert len(near) > 1000
    for word in near:
        expected = wordfreq.zipf_frequency(word, "en", wordlist="large") >= bursts.EVERYDAY_ZIPF
        assert bursts._everyday(word) == expected, word
