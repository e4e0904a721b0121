"""A trend's timeline and coverage map as every renderer shows them: one-line summaries, a
Unicode sparkline (Slack, Markdown, text) and bar heights for HTML/CSS bars (email, archive).

Mail clients block scripts, SVG and data URIs, so the HTML chart is table cells with a
height and a background colour: nothing to load, nothing to block.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.digest import Coverage, StoryTimeline, Trend, WhatChanged

SPARKS = "▁▂▃▄▅▆▇█"
BAR_HEIGHT = 36  # pixels of the tallest bar
FOLLOWERS_SHOWN = 6
FACTS_SHOWN = 3


def sparkline(counts: list[int]) -> str:
    """Counts as Unicode block characters scaled to the largest; only an empty hour is lowest."""
    top = max(counts, default=0)
    # Any item at all shows above the floor, so one item is never mistaken for none.
    return "".join(
        SPARKS[1 + round(count / top * (len(SPARKS) - 2))] if count else SPARKS[0]
        for count in counts
    )


@dataclass(frozen=True)
class Bar:
    start: datetime
    items: int
    new_outlets: int
    height: int  # pixels; 0 for an empty bucket

    @property
    def label(self) -> str:
        outlets = f", {self.new_outlets} new outlets" if self.new_outlets else ""
        return f"from {_clock(self.start)}: {_items(self.items)}{outlets}"


def bars(timeline: StoryTimeline) -> list[Bar]:
    top = max((bucket.items for bucket in timeline.buckets), default=0) or 1
    return [
        Bar(
            start=bucket.start,
            items=bucket.items,
            new_outlets=bucket.new_outlets,
            height=max(2, round(bucket.items / top * BAR_HEIGHT)) if bucket.items else 0,
        )
        for bucket in timeline.buckets
    ]


def _items(count: int) -> str:
    return f"{count} item{'' if count == 1 else 's'}"


def _clock(moment: datetime) -> str:
    return f"{moment:%d %b %H:%M} UTC"


def _after(delay: timedelta) -> str:
    minutes = max(0, round(delay.total_seconds() / 60))
    if minutes < 60:
        return f"+{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"+{hours} h {rest:02d} min" if rest else f"+{hours} h"


def timeline_line(timeline: StoryTimeline) -> str:
    """Rising: 9 items in 24 h, first seen 02 Dec 04:10 UTC, peak 5 items at 02 Dec 06:00 UTC."""
    items = sum(bucket.items for bucket in timeline.buckets)
    hours = len(timeline.buckets) * timeline.bucket_hours
    span = f"{hours // 24} days" if hours >= 48 and hours % 24 == 0 else f"{hours} h"
    return (
        f"{timeline.trajectory.capitalize()}: {_items(items)} in {span}, "
        f"first seen {_clock(timeline.first_seen)}, "
        f"peak {_items(timeline.peak_items)} at {_clock(timeline.peak)}"
    )


def spark_line(timeline: StoryTimeline) -> str:
    return f"{sparkline([bucket.items for bucket in timeline.buckets])} {timeline_line(timeline)}"


def followers(coverage: Coverage) -> str:
    shown = [
        f"{joined.source} {_after(joined.at - coverage.broke.at)}"
        for joined in coverage.followed[:FOLLOWERS_SHOWN]
    ]
    more = len(coverage.followed) - FOLLOWERS_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def coverage_line(coverage: Coverage) -> str:
    """Broke it: Wire (02 Dec 04:10 UTC); followed: Herald +12 min; silent: Ledger."""
    parts = [f"Broke it: {coverage.broke.source} ({_clock(coverage.broke.at)})"]
    if coverage.followed:
        parts.append(f"followed: {followers(coverage)}")
    if coverage.silent:
        parts.append(f"usually covers such stories, silent here: {', '.join(coverage.silent)}")
    return "; ".join(parts)


def changed_line(changed: WhatChanged) -> str:
    """What a developing story adds since it was reported."""
    parts = [f"Since reported {_clock(changed.since)}"]
    if changed.new_outlets:
        parts.append(f"new outlets: {', '.join(changed.new_outlets)}")
    if changed.new_entities:
        parts.append(f"new names: {', '.join(changed.new_entities)}")
    if changed.new_facts:
        parts.append("new: " + " / ".join(changed.new_facts[:FACTS_SHOWN]))
    if len(parts) == 1:
        parts.append("no new outlets or facts")
    return "; ".join(parts)


def lines(trend: Trend) -> list[str]:
    """The trend's history as plain lines, for Markdown, text and Slack (each escapes them)."""
    found = []
    if trend.timeline:
        found.append(spark_line(trend.timeline))
    if trend.coverage:
        found.append(coverage_line(trend.coverage))
    if trend.changed:
        found.append(changed_line(trend.changed))
    return found
