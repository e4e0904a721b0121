"""A profile's selection: what it has not seen yet within its lookback window, as values.

The daemon reads these from the store (daemon/select.py); the digest stages only compute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.config import DigestProfile
from core.digest import Digest, TopicTrend
from core.history import Arrival, Reported
from core.items import StoredItem

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
    # Social items' engagement against their source's and account's usual (digests/engagement).
    engagement: dict[str, float] = field(default_factory=dict)
    # Feature weights learned from this profile's readers' votes (digests/feedback.py);
    # empty without votes, and then the ranking is the signals' alone.
    preferences: Mapping[str, float] = field(default_factory=dict)
    # Each selected story's history (every source's first sight of each item), by story id.
    arrivals: Mapping[str, tuple[Arrival, ...]] = field(default_factory=dict)
    # Items per hour (hour start -> count) the profile's sources brought, for trajectories.
    stream: Mapping[datetime, int] = field(default_factory=dict)
    # The profile's sources that usually carry wide stories (for coverage blindspots).
    regulars: frozenset[str] = frozenset()
    # For stories reported before: the items the profile's earlier digests cited of them.
    reported_items: Mapping[str, Reported] = field(default_factory=dict)
    # Terms and entities trending across stories in the profile's sources now.
    topics: tuple[TopicTrend, ...] = ()

    @property
    def hours(self) -> float:
        return max((self.window_to - self.window_from).total_seconds() / 3600, 1 / 60)


def published_since(items: Sequence[StoredItem], since: datetime) -> tuple[StoredItem, ...]:
    """The items published since the window opened: a feed's back catalogue, collected for
    the first time today, is stored but is not news."""
    return tuple(item for item in items if item.published >= since)


def usual_rates(
    baseline: Mapping[str, int], items: Sequence[StoredItem], lookback: timedelta
) -> dict[str, float]:
    """Items per hour each source usually brings: over the BASELINE before the window, or,
    with no history yet, over the window itself (the best guess there is)."""
    if sum(baseline.values()):
        hours = BASELINE.total_seconds() / 3600
        counts = dict(baseline)
    else:
        counts = {}
        for item in items:
            for name in item.sources:
                counts[name] = counts.get(name, 0) + 1
        hours = max(lookback.total_seconds() / 3600, 1 / 60)
    return {name: count / hours for name, count in counts.items()}
