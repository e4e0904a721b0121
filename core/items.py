"""Items and fetches as values: what sources hand to the store and the store hands to digests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from core.config import SocialSource


@dataclass(frozen=True)
class NewItem:
    """One entry as a source saw it, already normalised to plain text and a canonical URL."""

    id: str
    url: str
    title: str
    text: str
    published: datetime
    content_hash: str


@dataclass(frozen=True)
class FetchRequest:
    """One source to fetch, with what its last successful fetch left for conditional GET."""

    name: str
    kind: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    # Site sources: canonical article links already looked at, so they are not fetched again.
    seen_links: frozenset[str] = frozenset()
    # Social sources: their configuration, and the cursor their last fetch left (opaque
    # text each source kind writes and reads: since_id, after, timestamps).
    social: SocialSource | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class Engagement:
    """Engagement numbers of one item as a social source showed them at fetch time.

    `likes` counts likes, favourites, points or a vote score; `reposts` retweets, boosts or
    reposts; `comments` replies or comments; `views` impressions where the service says.
    `author` is the account that posted it, so engagement compares within one account.
    """

    item_id: str
    author: str
    likes: int = 0
    reposts: int = 0
    comments: int = 0
    views: int | None = None


@dataclass(frozen=True)
class EngagementSeen:
    """One stored engagement reading: which source saw it, and when."""

    source: str
    seen_at: datetime
    engagement: Engagement


@dataclass(frozen=True)
class FetchOutcome:
    """What one attempt at one source produced: items, or a readable reason it did not.

    `status` is "ok" (parsed), "unchanged" (304 or same body: nothing to parse) or "error".
    The caching and politeness fields are what the next attempt needs: `retry_after` is
    the earliest next attempt the server asked for (Retry-After, max-age, RSS ttl),
    `permanent_url` where permanent redirects now lead, `disable_reason` why the source
    must not be fetched again (HTTP 410). A site source lists in `seen_links` the article
    links it looked at (turned into items or found not to be articles), to skip next time.
    """

    source: str
    status: Literal["ok", "unchanged", "error"]
    items: tuple[NewItem, ...] = ()
    error: str | None = None
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    permanent_url: str | None = None
    retry_after: datetime | None = None
    disable_reason: str | None = None
    warnings: tuple[str, ...] = field(default=())
    seen_links: tuple[str, ...] = ()
    # Social sources: the cursor to store (None keeps the last one), engagement seen now.
    cursor: str | None = None
    engagement: tuple[Engagement, ...] = ()


@dataclass(frozen=True)
class StoredItem:
    """An item as stored, as the digest stages read it."""

    id: str
    url: str
    title: str
    text: str
    published: datetime
    fetched: datetime
    sources: tuple[str, ...]
    story_id: str | None
