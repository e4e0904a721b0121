"""Select: what a digest profile has not seen yet, within its lookback window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.config import Config, DigestProfile
from daemon.store import Store
from digests.model import Digest, StoredItem

PREVIOUS_DIGESTS = 5
# The sources' usual rate is measured over this long before the window.
BASELINE = timedelta(days=7)
# Earlier digests' stories older than this cannot come back: grouping anchors are younger.
REPORTED_HORIZON = timedelta(days=14)


@dataclass(frozen=True)
class Selection:
    profile: DigestProfile
    window_from: datetime
    window_to: datetime
    items: tuple[StoredItem, ...]
    previous: tuple[Digest, ...]  # newest first, for novelty
    # Stories an earlier digest of this profile cited, with the sources it cited for each.
    reported: dict[str, frozenset[str]]
    source_weights: dict[str, float]
    # Items per hour each source usually brings (before this window; this window if no history).
    usual_rates: dict[str, float]

    @property
    def hours(self) -> float:
        return max((self.window_to - self.window_from).total_seconds() / 3600, 1 / 60)


def select(store: Store, config: Config, profile: DigestProfile, now: datetime) -> Selection:
    sources = [source.name for source in config.sources_for(profile)]
    window_from = now - profile.lookback
    items = tuple(store.pending_items(profile.name, sources, window_from))
    baseline = store.items_per_source(sources, window_from - BASELINE, window_from)
    if sum(baseline.values()):
        hours = BASELINE.total_seconds() / 3600
    else:
        # No history yet: the window itself is the best guess of the usual rate.
        baseline = {}
        for item in items:
            for name in item.sources:
                baseline[name] = baseline.get(name, 0) + 1
        hours = max(profile.lookback.total_seconds() / 3600, 1 / 60)
    return Selection(
        profile=profile,
        window_from=window_from,
        window_to=now,
        items=items,
        previous=tuple(store.recent_digests(profile.name, PREVIOUS_DIGESTS)),
        reported=store.reported_story_sources(profile.name, now - REPORTED_HORIZON),
        source_weights={source.name: source.weight for source in config.sources_for(profile)},
        usual_rates={name: count / hours for name, count in baseline.items()},
    )
