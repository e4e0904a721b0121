"""A reader's vote on a story, as the store keeps it and the ranking learns from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Vote:
    profile: str
    story_id: str
    value: int  # +1 (more like this) or -1 (less like this)
    sources: tuple[str, ...]  # the story's sources when it was voted on
    terms: tuple[str, ...]  # its title terms then (digests.signals.words)
    voted_at: datetime
