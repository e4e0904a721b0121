"""Alerts between scheduled digests: after each collect and group, every profile's `alerts:`
rules are evaluated against the store; what fires is stored as an alert digest with its
deliveries queued in one transaction, and the outbox sends it like any digest (exactly once,
retried, never lost). The burst detectors' baselines learn from every cycle, alerts or not.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.config import (
    Config,
    DigestProfile,
    KeywordRule,
    StoryBurstRule,
    TopicTrendRule,
)
from core.crashpoints import crash_point
from core.digest import Digest, TopicTrend
from core.history import Sighting
from core.items import StoredItem
from core.store import AlertRecord, Store
from digests import alerting, bursts, timeline
from digests.deliver import wants
from digests.selection import REPORTED_HORIZON
from digests.validate import digest_items

log = logging.getLogger("trendfinder")

BASELINES = "bursts"
SETTINGS = bursts.BurstSettings()
# Stories are looked at over the longest window any detector uses.
HORIZON = SETTINGS.topic_window
# Keyword rules read this much of each item's text.
KEYWORD_TEXT_CHARS = 1000
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class PlannedAlert:
    record: AlertRecord
    digest: Digest
    targets: tuple[str, ...]


def stories_from(
    sightings: Iterable[Sighting], sources: set[str] | None = None
) -> list[bursts.StoryActivity]:
    """Each story's recent activity, counting only `sources` when given."""
    titles: dict[str, dict[str, None]] = defaultdict(dict)
    texts: dict[str, dict[str, None]] = defaultdict(dict)
    joined: dict[str, dict[str, datetime]] = defaultdict(dict)
    for sighting in sightings:
        if sources is not None and sighting.source not in sources:
            continue
        story = sighting.story_id
        titles[story][sighting.title] = None
        if sighting.text:
            texts[story][sighting.text] = None
        first = joined[story].get(sighting.source)
        if first is None or sighting.at < first:
            joined[story][sighting.source] = sighting.at
    return [
        bursts.StoryActivity(story, tuple(titles[story]), joined[story], tuple(texts[story]))
        for story in sorted(joined)
    ]


def load_baselines(store: Store) -> bursts.Baselines:
    blob = store.baselines(BASELINES)
    if blob is None:
        return bursts.Baselines.empty()
    try:
        return bursts.Baselines.from_bytes(blob)
    except ValueError as error:
        log.warning("burst baselines unreadable (%s); starting them afresh", error)
        return bursts.Baselines.empty()


def topics_for(
    store: Store,
    stories: Sequence[bursts.StoryActivity],
    baselines: bursts.Baselines,
    now: datetime,
    settings: bursts.BurstSettings = SETTINGS,
) -> list[TopicTrend]:
    """Trending topics with one lead item (from the store) per story carrying them."""
    found = bursts.topic_bursts(stories, baselines, now, settings)
    if not found:
        return []
    story_ids = sorted({story for topic in found for story in topic.stories})
    leads: dict[str | None, StoredItem] = {}
    for item in store.lead_items(story_ids):
        leads.setdefault(item.story_id, item)
    return [
        TopicTrend(
            term=topic.term,
            stories=len(topic.stories),
            significance=round(topic.significance, 2),
            items=digest_items([leads[s] for s in topic.stories if s in leads]).items,
        )
        for topic in found
    ]


def digest_topics(
    store: Store, config: Config, profile: DigestProfile, now: datetime
) -> tuple[TopicTrend, ...]:
    """The topics trending in a profile's sources now, for its digest (read-only)."""
    names = {source.name for source in config.sources_for(profile)}
    stories = stories_from(store.sightings(now - HORIZON, 0), names)
    return tuple(topics_for(store, stories, load_baselines(store), now))


def _rule_settings(rule: StoryBurstRule | TopicTrendRule) -> bursts.BurstSettings:
    if isinstance(rule, StoryBurstRule):
        return bursts.BurstSettings(window=rule.window, min_outlets=rule.outlets, z=rule.z)
    return bursts.BurstSettings(topic_stories=rule.stories, topic_z=rule.z)


def plan(
    store: Store, config: Config, now: datetime
) -> tuple[list[PlannedAlert], bursts.Baselines, list[bursts.StoryActivity]]:
    """What would fire now, the baselines it was judged against, and the stream's stories."""
    keywords = any(
        isinstance(rule, KeywordRule)
        for profile in config.digests
        if profile.alerts
        for rule in profile.alerts.rules
    )
    sightings = store.sightings(now - HORIZON, KEYWORD_TEXT_CHARS if keywords else 0)
    baselines = load_baselines(store)
    planned: list[PlannedAlert] = []
    for profile in config.digests:
        if profile.alerts is None:
            continue
        names = {source.name for source in config.sources_for(profile)}
        stories = stories_from(sightings, names)
        planned += _plan_profile(store, profile, stories, baselines, now)
    return planned, baselines, stories_from(sightings)


def _plan_profile(
    store: Store,
    profile: DigestProfile,
    stories: Sequence[bursts.StoryActivity],
    baselines: bursts.Baselines,
    now: datetime,
) -> list[PlannedAlert]:
    rules = profile.alerts
    assert rules is not None
    by_id = {story.story_id: story for story in stories}
    # subject -> (size, rule name, reason, window, topic)
    candidates: dict[str, tuple[int, str, str, timedelta, TopicTrend | None]] = {}
    found: TopicTrend | None
    for rule in rules.rules:
        if isinstance(rule, StoryBurstRule):
            settings = _rule_settings(rule)
            for burst in bursts.story_bursts(stories, baselines, now, settings):
                reason = f"{burst.outlets} outlets joined within {alerting.span(rule.window)}"
                if rule.z:
                    reason += f", {burst.significance:.1f} sd above the usual"
                candidates.setdefault(
                    burst.story_id, (burst.total_outlets, "story", reason, rule.window, None)
                )
        elif isinstance(rule, TopicTrendRule):
            for topic in topics_for(store, stories, baselines, now, _rule_settings(rule)):
                reason = f"'{topic.term}' across {topic.stories} stories"
                candidates.setdefault(
                    f"topic:{topic.term}", (topic.stories, "topic", reason, HORIZON, topic)
                )
        else:
            for story in stories:
                if len(story.joined) < rule.outlets:
                    continue
                named = [phrase for phrase in rule.match if story.mentions(phrase)]
                if named:
                    reason = f"it names {', '.join(repr(p) for p in named)}"
                    size = len(story.joined)
                    candidates.setdefault(story.story_id, (size, "keywords", reason, HORIZON, None))
    if not candidates:
        return []
    alerted = store.alerted(profile.name, now - REPORTED_HORIZON)
    sent = len(store.recent_alerts(rules.per_hour, since=now - HOUR, profile=profile.name))
    caps = bursts.AlertCaps(per_hour=rules.per_hour, repeat_factor=rules.repeat_when)
    sizes = {subject: size for subject, (size, *_rest) in candidates.items()}
    planned = []
    for subject in bursts.worth_alerting(sizes, alerted, sent, caps):
        size, rule_name, reason, window, found = candidates[subject]
        if found is not None:
            digest = alerting.topic_alert(profile.name, now, found, window, len(found.items))
        else:
            story = by_id[subject]
            items = store.story_items(subject, now - HORIZON, set(story.joined))
            if not items:
                continue
            arrivals = store.story_arrivals([subject], now - REPORTED_HORIZON).get(subject, ())
            names = sorted(story.joined)
            stream = store.items_per_hour(names, now - timeline.DIGEST.history, now + HOUR)
            digest = alerting.story_alert(
                profile.name, now, subject, reason, window, items, arrivals, stream
            )
        record = AlertRecord(profile.name, subject, rule_name, size, now, digest.id)
        # The targets' own filters (only_alerts, min_trends) apply to alerts too.
        targets = tuple(t.label for t in profile.alert_targets if wants(t, digest))
        planned.append(PlannedAlert(record, digest, targets))
    return planned


def run_alerts(
    store: Store, config: Config, now: datetime, *, dry_run: bool = False
) -> list[PlannedAlert]:
    """Evaluate every profile's rules; unless `dry_run`, store what fired (queued for the
    outbox) and fold this hour into the baselines."""
    planned, baselines, stories = plan(store, config, now)
    if dry_run:
        return planned
    for alert in planned:
        crash_point("alert.saving")
        store.save_alert(alert.digest, alert.targets, alert.record)
        crash_point("alert.saved")
        log.info(
            "alert %s: %s %s (%s)",
            alert.digest.id,
            alert.record.rule,
            alert.record.subject,
            alert.digest.trends[0].why_it_matters if alert.digest.trends else "topic trend",
        )
    if bursts.fold(baselines, stories, now, SETTINGS):
        store.save_baselines(BASELINES, baselines.to_bytes(), now)
    return planned
