"""Story timelines: items and outlets per hour, trajectories, coverage maps, and how they show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sample_digests as samples

from core.history import Arrival
from digests import blockkit, charts, render, timeline

END = datetime(2026, 12, 2, 12, 30, tzinfo=UTC)
H = timedelta(hours=1)


def arrivals(*spec: tuple[float, str]) -> list[Arrival]:
    """(hours before END, source) -> one item each."""
    return [
        Arrival(item_id=f"i{n}", source=source, at=END - H * back)
        for n, (back, source) in enumerate(spec)
    ]


def flat_stream(per_hour: int, hours: int = 30) -> dict[datetime, int]:
    last = timeline.hour_of(END)
    return {last - H * n: per_hour for n in range(hours)}


def test_buckets_count_items_and_the_hour_each_outlet_joined():
    story = arrivals(
        (3.2, "wire"), (3.1, "wire"), (1.0, "herald"), (0.2, "herald"), (0.1, "ledger")
    )
    hours = timeline.buckets(story, END)
    assert len(hours) == timeline.DIGEST.buckets
    assert hours[-1].start == datetime(2026, 12, 2, 12, tzinfo=UTC)
    by_hour = {hour.start.hour: (hour.items, hour.new_outlets) for hour in hours}
    assert by_hour[9] == (2, 1)  # wire broke it with two items
    assert by_hour[11] == (1, 1)  # herald joined
    assert by_hour[12] == (2, 1)  # herald again and ledger joining
    assert sum(hour.items for hour in hours) == 5


def test_a_fresh_story_is_new_and_a_reported_one_is_not():
    story = arrivals((2, "wire"), (1, "herald"))
    assert timeline.trajectory(story, END, flat_stream(10)) == "new"
    assert timeline.trajectory(story, END, flat_stream(10), reported=True) == "rising"


def test_a_story_taking_a_larger_share_of_the_stream_is_rising():
    story = arrivals((20, "wire"), (15, "herald"), (3, "a"), (2, "b"), (1, "c"), (0.5, "d"))
    assert timeline.trajectory(story, END, flat_stream(10)) == "rising"


def test_a_story_that_only_follows_the_streams_own_swell_is_steady():
    # Twice the items lately, but the whole stream doubled too: its share did not move.
    story = arrivals(*[(20 - n, "wire") for n in range(3)], *[(5 - n / 2, "x") for n in range(2)])
    stream = flat_stream(3)
    for back in range(6):
        stream[timeline.hour_of(END) - H * back] = 6
    assert timeline.trajectory(story, END, stream) == "steady"


def test_a_story_with_nothing_lately_is_fading():
    story = arrivals((20, "wire"), (19, "herald"), (18, "ledger"))
    assert timeline.trajectory(story, END, flat_stream(10)) == "fading"
    quieter = arrivals(*[(23 - n / 3, "wire") for n in range(12)], (1, "herald"))
    assert timeline.trajectory(quieter, END, flat_stream(10)) == "fading"


def test_the_timeline_names_first_sight_and_the_peak_hour():
    story = arrivals((10, "wire"), (2.1, "a"), (2.2, "b"), (2.3, "c"), (1, "d"))
    found = timeline.timeline(story, END, flat_stream(10))
    assert found is not None
    assert found.first_seen == END - 10 * H
    assert found.peak == timeline.hour_of(END - 2.2 * H)
    assert found.peak_items == 3


def test_coverage_names_who_broke_it_who_followed_in_order_and_the_silent_regulars():
    story = arrivals((3, "wire"), (2, "herald"), (2.5, "ledger"), (1, "wire"))
    found = timeline.coverage(story, regulars={"wire", "times", "post"})
    assert found is not None
    assert found.broke.source == "wire"
    assert [joined.source for joined in found.followed] == ["ledger", "herald"]
    assert found.silent == ("post", "times")
    # A narrow story's missing outlets say nothing.
    narrow = timeline.coverage(arrivals((3, "wire"), (2, "herald")), regulars={"times"})
    assert narrow is not None and narrow.silent == ()


def test_regular_outlets_are_those_carrying_half_the_wide_stories():
    assert timeline.regular_outlets(10, {"wire": 9, "herald": 5, "blog": 1}) == {"wire", "herald"}
    assert timeline.regular_outlets(2, {"wire": 2}) == set()


def test_sparkline_scales_to_the_peak_and_never_hides_a_single_item():
    line = charts.sparkline([0, 1, 2, 8])
    assert line[0] == "▁" and line[1] != "▁" and line[-1] == "█"
    assert charts.sparkline([0, 0]) == "▁▁"


def test_every_format_shows_the_timeline_and_coverage_map():
    trend = samples.history(samples.trend(1))
    digest = samples.digest((trend,))
    spark = charts.sparkline([hour.items for hour in trend.timeline.buckets])  # type: ignore[union-attr]
    for text in (render.markdown(digest), render.text(digest)):
        assert spark in text
        assert "Broke it: outlet-0" in text
        assert "outlet-1 +15 min" in text and "outlet-2 +1 h 55 min" in text
        assert "outlet-9" in text
    slack = str([message.payload() for message in blockkit.messages(digest, archive=False)])
    assert spark in slack and "Broke it: outlet-0" in slack
    html = render.html(digest)
    assert html.count('class="bar"') == len(trend.timeline.buckets)  # type: ignore[union-attr]
    assert "<svg" not in html and "data:" not in html and "<script" not in html
    assert "outlet-9" in html


def test_a_digest_stored_before_timelines_existed_still_reads():
    digest = samples.digest()
    body = digest.model_dump(by_alias=True, mode="json")
    for trend in body["trends"]:
        for key in ("story", "timeline", "coverage", "changed"):
            trend.pop(key)
    body.pop("topics")
    body.pop("kind")
    again = type(digest).model_validate(body)
    assert again.trends[0].timeline is None
    assert render.html(again) == render.html(digest)
