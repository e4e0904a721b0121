"""Select: what a digest profile has not seen yet, within its lookback window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.config import Config, DigestProfile
from daemon.store import Store
from digests.model import Digest, StoredItem

PREVIOUS_DIGESTS = 5


@dataclass(frozen=True)
class Selection:
    profile: DigestProfile
    window_from: datetime
    window_to: datetime
    items: tuple[StoredItem, ...]
    previous: tuple[Digest, ...]  # newest first, for novelty
    reported_stories: frozenset[str]  # stories an earlier digest of this profile cited
    source_weights: dict[str, float]


def select(store: Store, config: Config, profile: DigestProfile, now: datetime) -> Selection:
    sources = config.sources_for(profile)
    window_from = now - profile.lookback
    items = store.pending_items(profile.name, [source.name for source in sources], window_from)
    return Selection(
        profile=profile,
        window_from=window_from,
        window_to=now,
        items=tuple(items),
        previous=tuple(store.recent_digests(profile.name, PREVIOUS_DIGESTS)),
        reported_stories=frozenset(store.reported_stories(profile.name)),
        source_weights={source.name: source.weight for source in sources},
    )
