"""A story over time (pure): items and outlets per hour, who broke it, who followed, and
whether it is new, rising, steady or fading.

The trajectory compares the story's share of the stream lately with its share before, so a
story that merely follows the stream's daily ebb (everything quieter at night) stays steady.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.config import DigestProfile
from core.digest import Bucket, Coverage, Joined, StoryTimeline, Trajectory, Trend
from core.history import Arrival

HOUR = timedelta(hours=1)
RISING = 1.5  # share lately at least this many times its share before
FADING = 0.5  # ...or at most this fraction of it
# Stories this wide have "usual" outlets whose silence is worth a word.
WIDE = 3


@dataclass(frozen=True)
class Spans:
    """How a timeline looks at time: its chart's buckets, and the trajectory's spans."""

    bucket_hours: int  # each chart bar
    buckets: int  # bars in a chart, ending with the digest's last bucket
    recent: timedelta  # "lately" for the trajectory
    prior: timedelta  # ...and the span before it that it is compared with
    new_for: timedelta  # a story first seen this recently, and never reported, is new

    @property
    def chart(self) -> timedelta:
        return HOUR * self.bucket_hours * self.buckets

    @property
    def history(self) -> timedelta:
        """How far back a timeline reads the story and the stream."""
        return max(self.chart, self.recent + self.prior)


# A daily digest: a day of hourly bars; a weekly report: a week in six-hour bars.
DIGEST = Spans(bucket_hours=1, buckets=24, recent=6 * HOUR, prior=18 * HOUR, new_for=6 * HOUR)
REPORT = Spans(bucket_hours=6, buckets=28, recent=48 * HOUR, prior=120 * HOUR, new_for=48 * HOUR)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def bucket_of(moment: datetime, hours: int) -> datetime:
    start = hour_of(moment)
    return start.replace(hour=start.hour - start.hour % hours)


def first_arrivals(arrivals: Iterable[Arrival]) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """When each item and each source first appeared on the story."""
    items: dict[str, datetime] = {}
    sources: dict[str, datetime] = {}
    for arrival in arrivals:
        if arrival.item_id not in items or arrival.at < items[arrival.item_id]:
            items[arrival.item_id] = arrival.at
        if arrival.source not in sources or arrival.at < sources[arrival.source]:
            sources[arrival.source] = arrival.at
    return items, sources


def buckets(arrivals: Sequence[Arrival], end: datetime, spans: Spans = DIGEST) -> list[Bucket]:
    """Items first seen and outlets joining in each bucket of the chart up to `end`."""
    items, sources = first_arrivals(arrivals)
    width = HOUR * spans.bucket_hours
    last = bucket_of(end, spans.bucket_hours)
    starts = [last - width * back for back in range(spans.buckets - 1, -1, -1)]
    item_counts = dict.fromkeys(starts, 0)
    outlet_counts = dict.fromkeys(starts, 0)
    for at in items.values():
        if (start := bucket_of(at, spans.bucket_hours)) in item_counts:
            item_counts[start] += 1
    for at in sources.values():
        if (start := bucket_of(at, spans.bucket_hours)) in outlet_counts:
            outlet_counts[start] += 1
    return [
        Bucket(start=start, items=item_counts[start], new_outlets=outlet_counts[start])
        for start in starts
    ]


def _count(times: Iterable[datetime], start: datetime, end: datetime) -> int:
    return sum(1 for at in times if start <= at < end)


def stream_count(stream: Mapping[datetime, int], start: datetime, end: datetime) -> int:
    """Items in the whole stream between two times, from its hourly counts."""
    return sum(count for hour, count in stream.items() if start <= hour < end)


def trajectory(
    arrivals: Sequence[Arrival],
    end: datetime,
    stream: Mapping[datetime, int],
    *,
    reported: bool = False,
    spans: Spans = DIGEST,
) -> Trajectory:
    """new, rising, steady or fading: the story's share of the stream lately against before.

    `stream` holds the items per hour (hour start -> count) of every story the profile
    follows; a share, not a count, so the stream's own daily rhythm does not look like news.
    """
    items, _ = first_arrivals(arrivals)
    if not items:
        return "fading"
    if not reported and end - min(items.values()) <= spans.new_for:
        return "new"
    recent_start, prior_start = end - spans.recent, end - spans.recent - spans.prior
    recent = _count(items.values(), recent_start, end + HOUR)
    prior = _count(items.values(), prior_start, recent_start)
    if recent == 0:
        return "fading"
    # The stream counts are whole hours; the story's own items are always part of it.
    recent_share = recent / max(stream_count(stream, hour_of(recent_start), end + HOUR), recent)
    prior_share = prior / max(stream_count(stream, hour_of(prior_start), hour_of(recent_start)), 1)
    if prior == 0:
        return "rising" if recent >= 2 else "steady"
    ratio = recent_share / prior_share
    if ratio >= RISING and recent >= 2:
        return "rising"
    if ratio <= FADING:
        return "fading"
    return "steady"


def timeline(
    arrivals: Sequence[Arrival],
    end: datetime,
    stream: Mapping[datetime, int],
    *,
    reported: bool = False,
    spans: Spans = DIGEST,
) -> StoryTimeline | None:
    if not arrivals:
        return None
    items, _ = first_arrivals(arrivals)
    per_bucket: dict[datetime, int] = {}
    for at in items.values():
        start = bucket_of(at, spans.bucket_hours)
        per_bucket[start] = per_bucket.get(start, 0) + 1
    peak = min(per_bucket, key=lambda start: (-per_bucket[start], start))
    return StoryTimeline(
        first_seen=min(items.values()),
        peak=peak,
        peak_items=per_bucket[peak],
        trajectory=trajectory(arrivals, end, stream, reported=reported, spans=spans),
        bucket_hours=spans.bucket_hours,
        buckets=tuple(buckets(arrivals, end, spans)),
    )


def coverage(arrivals: Sequence[Arrival], regulars: Iterable[str] = ()) -> Coverage | None:
    """Who broke it, who followed in order, and which regular outlets of a wide story did not.

    `regulars` are the profile's sources that usually carry stories this wide (see
    `regular_outlets`); their silence on a narrow story says nothing, so it is not shown.
    """
    _, sources = first_arrivals(arrivals)
    if not sources:
        return None
    order = sorted(sources.items(), key=lambda pair: (pair[1], pair[0]))
    joined = [Joined(source=source, at=at) for source, at in order]
    silent = sorted(set(regulars) - set(sources)) if len(sources) >= WIDE else []
    return Coverage(broke=joined[0], followed=tuple(joined[1:]), silent=tuple(silent))


def regular_outlets(wide_stories: int, carried: Mapping[str, int], share: float = 0.5) -> set[str]:
    """Sources that carried at least `share` of the recent wide stories (at least WIDE of them)."""
    if wide_stories < WIDE:
        return set()
    return {source for source, count in carried.items() if count >= share * wide_stories}


def annotate(
    trends: Sequence[Trend],
    story_ids: Sequence[str],
    arrivals: Mapping[str, Sequence[Arrival]],
    end: datetime,
    stream: Mapping[datetime, int],
    regulars: Iterable[str],
    reported: Iterable[str],
    spans: Spans = DIGEST,
) -> tuple[Trend, ...]:
    """Each trend with its story id, timeline and coverage map (when the store had its history)."""
    told = set(reported)
    usual = set(regulars)
    annotated = []
    for trend, story_id in zip(trends, story_ids, strict=True):
        history = arrivals.get(story_id, ())
        annotated.append(
            trend.model_copy(
                update={
                    "story": story_id,
                    "timeline": timeline(
                        history, end, stream, reported=story_id in told, spans=spans
                    ),
                    "coverage": coverage(history, usual),
                }
            )
        )
    return tuple(annotated)


def spans_for(profile: DigestProfile) -> Spans:
    return REPORT if profile.kind == "report" else DIGEST
