"""The digest document as users' tools read it (the JSON body), and what making it cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DigestItem(_Frozen):
    """One collected item backing a trend. Every field comes from the store, never the model."""

    title: str
    url: str
    source: str
    published: datetime


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
    created_at: datetime
    analyzer: str = Field(description="the model's name, or 'offline'")
    window: Window
    trends: tuple[Trend, ...]
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
