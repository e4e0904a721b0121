"""A story's history as the store reads it: which source brought which item, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.items import StoredItem

# A feed polled for the first time (or after an outage) brings items published earlier; their
# own date is closer to when the source had them, as long as it is plausible.
PLAUSIBLE_LAG = timedelta(days=1)


@dataclass(frozen=True)
class Arrival:
    """One source's copy of one item of a story, first seen at `at`."""

    item_id: str
    source: str
    at: datetime


def arrival_time(published: datetime, seen: datetime) -> datetime:
    """When a source had an item: its published date if just before we saw it, else our sight."""
    return published if seen - PLAUSIBLE_LAG <= published <= seen else seen


@dataclass(frozen=True)
class Sighting:
    """A source's first sight of one item of a story, with the item's title and text start."""

    story_id: str
    item_id: str
    title: str
    text: str
    source: str
    seen: datetime
    published: datetime

    @property
    def at(self) -> datetime:
        return arrival_time(self.published, self.seen)


@dataclass(frozen=True)
class Reported:
    """What a profile's earlier digests cited of a story: when first, and which items."""

    at: datetime
    items: tuple[StoredItem, ...]
