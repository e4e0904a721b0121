"""Read a profile's selection from the store: the one place the digest stages' input is read."""

from __future__ import annotations

from datetime import datetime

from core.config import Config, DigestProfile
from core.store import Store
from daemon.alerts import digest_topics
from digests import timeline
from digests.engagement import engagement_scores
from digests.feedback import learn
from digests.selection import (
    BASELINE,
    PREVIOUS_DIGESTS,
    REPORTED_HORIZON,
    Selection,
    published_since,
    usual_rates,
)


def select(store: Store, config: Config, profile: DigestProfile, now: datetime) -> Selection:
    sources = config.sources_for(profile)
    names = [source.name for source in sources]
    window_from = now - profile.lookback
    items = published_since(store.pending_items(profile.name, names, window_from), window_from)
    baseline = store.items_per_source(names, window_from - BASELINE, window_from)
    stories = {item.story_id for item in items if item.story_id}
    history_from = now - timeline.spans_for(profile).history
    wide, carried = store.wide_story_outlets(names, now - BASELINE, timeline.WIDE)
    reported = store.reported_story_sources(profile.name, now - REPORTED_HORIZON)
    told = sorted(stories & set(reported))
    return Selection(
        profile=profile,
        window_from=window_from,
        window_to=now,
        items=items,
        previous=tuple(store.recent_digests(profile.name, PREVIOUS_DIGESTS)),
        reported=reported,
        source_weights={source.name: source.weight for source in sources},
        usual_rates=usual_rates(baseline, items, profile.lookback),
        engagement=engagement_scores(store.engagement_since(names, window_from - BASELINE)),
        preferences=learn(store.votes(profile.name)),
        arrivals=store.story_arrivals(sorted(stories), now - REPORTED_HORIZON),
        stream=store.items_per_hour(names, history_from, now + timeline.HOUR),
        regulars=frozenset(timeline.regular_outlets(wide, carried)),
        reported_items=store.reported_items(profile.name, told, now - REPORTED_HORIZON),
        topics=digest_topics(store, config, profile, now),
    )
