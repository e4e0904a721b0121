"""A reader's vote on a story, as the store keeps it and the ranking learns from it."""

from __future__ import annotations

from collections.abc import Mapping
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


@dataclass(frozen=True)
class VoteLinks:
    """Signed 👍 / 👎 links of a digest's stories, for the email and Slack bodies to carry
    (made by the web app's signer when serve.public_url is set; rendering only shows them)."""

    by_story: Mapping[str, tuple[str, str]]  # story id -> (up link, down link)

    def of(self, story_id: str | None) -> tuple[str, str] | None:
        return self.by_story.get(story_id) if story_id else None
