"""An alert as a digest document (pure): one bursting story or trending topic, with its links
from the store, sent between scheduled digests through the same outbox."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from core.digest import Digest, DigestStats, TopicTrend, Trend, Window
from core.history import Arrival
from core.items import StoredItem
from digests import timeline
from digests.validate import digest_items, scrub

ANALYZER = "statistical alert"


def alert_id(profile: str, now: datetime, subject: str) -> str:
    """Unique per profile, time and subject; the subject's hash keeps it short and safe."""
    tag = hashlib.blake2b(subject.encode(), digest_size=4).hexdigest()
    return f"{profile}-alert-{now:%Y%m%dT%H%M%SZ}-{tag}"


def span(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{round(hours * 60)} min"


def story_alert(
    profile: str,
    now: datetime,
    story_id: str,
    reason: str,
    window: timedelta,
    items: Sequence[StoredItem],
    arrivals: Sequence[Arrival],
    stream: Mapping[datetime, int],
) -> Digest:
    """`reason` says which rule fired, e.g. '3 outlets within 2 h'."""
    lead = items[0]
    sources = sorted({name for item in items for name in item.sources})
    trend = Trend(
        rank=1,
        title=scrub(lead.title),
        summary=scrub(f"{len(sources)} outlets carry this story: {', '.join(sources)}."),
        why_it_matters=f"Alert: {reason}.",
        status="new",
        score=float(len(sources)),
        **vars(digest_items(items)),  # items, more_items, more_outlets
    )
    annotated = timeline.annotate([trend], [story_id], {story_id: arrivals}, now, stream, (), ())
    return _digest(profile, now, story_id, window, annotated, (), len(items), sources, 1)


def topic_alert(
    profile: str, now: datetime, topic: TopicTrend, window: timedelta, items: int
) -> Digest:
    sources = sorted({item.source for item in topic.items})
    subject = f"topic:{topic.term}"
    return _digest(profile, now, subject, window, (), (topic,), items, sources, topic.stories)


def _digest(
    profile: str,
    now: datetime,
    subject: str,
    window: timedelta,
    trends: tuple[Trend, ...],
    topics: tuple[TopicTrend, ...],
    items: int,
    sources: Sequence[str],
    stories: int,
) -> Digest:
    return Digest(
        id=alert_id(profile, now, subject),
        profile=profile,
        kind="alert",
        created_at=now,
        analyzer=ANALYZER,
        window=Window(from_=now - window, to=now),
        trends=trends,
        topics=topics,
        notes=(
            f"An alert between scheduled digests: it took off in the last {span(window)}. "
            "The next digest covers it in full.",
        ),
        stats=DigestStats(items=items, sources=len(sources), stories=stories),
    )
