"""The digest document as users' tools read it (the JSON body), and what making it cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class DigestItem(_Frozen):
    """One collected item backing a trend. Every field comes from the store, never the model."""

    title: str
    url: str
    source: str
    published: datetime


class Joined(_Frozen):
    """A source's first item on a story, and when it came."""

    source: str
    at: datetime


class Bucket(_Frozen):
    """A stretch of a story's timeline: an hour in a digest, six hours in a weekly report."""

    start: datetime
    items: int = Field(ge=0, description="items first seen in it")
    new_outlets: int = Field(ge=0, description="sources that joined the story in it")


Trajectory = Literal["new", "rising", "steady", "fading"]


class StoryTimeline(_Frozen):
    first_seen: datetime
    peak: datetime = Field(description="the start of the bucket with the most items")
    peak_items: int
    trajectory: Trajectory
    bucket_hours: int = Field(default=1, ge=1)
    buckets: tuple[Bucket, ...] = Field(description="oldest first, up to the digest's end")


class Coverage(_Frozen):
    """Who broke a story, who followed and when, and which usual outlets stayed silent."""

    broke: Joined
    followed: tuple[Joined, ...]
    silent: tuple[str, ...] = Field(
        default=(),
        description="the profile's sources that usually cover stories this wide, absent here",
    )


class WhatChanged(_Frozen):
    """For a story reported before: what the new items add to what was reported."""

    since: datetime = Field(description="when an earlier digest of this profile reported it")
    new_outlets: tuple[str, ...] = ()
    new_facts: tuple[str, ...] = Field(default=(), description="sentences the reported lacked")
    new_entities: tuple[str, ...] = ()


class TopicTrend(_Frozen):
    """A term or entity whose coverage across stories jumped above its baseline."""

    term: str
    stories: int = Field(ge=1, description="distinct stories carrying it lately")
    significance: float = Field(description="standard deviations above its running baseline")
    items: tuple[DigestItem, ...] = Field(description="one lead item per story carrying it")


class Trend(_Frozen):
    rank: int = Field(ge=1)
    title: str
    summary: str
    why_it_matters: str
    status: str = Field(default="new", description="new or developing")
    score: float = 0.0
    items: tuple[DigestItem, ...] = Field(description="the items listed, a few of the story's")
    more_items: int = Field(default=0, ge=0, description="the story's items not listed")
    more_outlets: tuple[str, ...] = Field(
        default=(), description="the outlets of those items, each once"
    )
    story: str | None = Field(default=None, description="the story id, stable across digests")
    timeline: StoryTimeline | None = None
    coverage: Coverage | None = None
    changed: WhatChanged | None = None

    def unlisted(self, listed: int) -> tuple[int, int]:
        """Items and distinct outlets beyond the first `listed` items shown to a reader."""
        rest = self.items[listed:]
        outlets = {item.source for item in rest} | set(self.more_outlets)
        return len(rest) + self.more_items, len(outlets)


class Window(_Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime


class DigestStats(_Frozen):
    items: int = Field(description="items considered")
    sources: int = Field(description="distinct sources among them")
    stories: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = Field(default=0.0, description="estimated, US dollars")


class Digest(_Frozen):
    id: str
    profile: str
    kind: Literal["digest", "alert", "report"] = "digest"
    created_at: datetime
    analyzer: str = Field(description="the model's name, or 'offline'")
    window: Window
    trends: tuple[Trend, ...]
    topics: tuple[TopicTrend, ...] = ()
    reflection: tuple[str, ...] = Field(
        default=(), description="a report's main movements, what is fading, what to watch"
    )
    quiet: bool = Field(default=False, description="nothing notable this time")
    notes: tuple[str, ...] = Field(
        default=(), description="what the reader should know, e.g. a fallback"
    )
    stats: DigestStats

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


@dataclass(frozen=True)
class TokenUsage:
    """What the model calls behind one digest consumed, and their estimated cost."""

    input: int = 0
    cached: int = 0
    reasoning: int = 0
    output: int = 0
    cost: float = 0.0
