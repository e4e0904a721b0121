"""What the social and aggregator sources share: JSON over the feeds' HTTP limits, readable
errors, posts as items with canonical links, rate-limit hints, and their cursors.

Every request goes through sources/http.fetch (timeouts, size cap, redirect rules). The
links a post shares are canonicalised and become the item's identity, but are never
fetched, so content cannot steer a request anywhere (no SSRF surface).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import TrendfinderError
from core.items import Engagement, FetchOutcome, FetchRequest, NewItem
from core.retry import retry_delay
from core.urls import canonical_url, is_web_url
from sources.context import FetchContext
from sources.http import FetchError, HttpResponse, fetch
from sources.items import identity_id
from sources.policy import not_before
from sources.text import html_to_text, one_line

TITLE_CHARS = 200


class SourceError(TrendfinderError):
    """One social fetch failed; the message is for the operator. `retry_at` is the earliest
    next attempt the service asked for (a rate limit), when it said."""

    def __init__(
        self, message: str, status: int | None = None, retry_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_at = retry_at


@dataclass(frozen=True)
class JsonAnswer:
    response: HttpResponse
    data: Any


async def get_json(
    context: FetchContext,
    url: str,
    service: str,
    *,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> JsonAnswer:
    """GET (or POST `form` to) a JSON API within the cycle's limits; SourceError for
    anything but a 2xx JSON answer, with the service's own explanation when it gave one."""
    wanted = {"Accept": "application/json", **(headers or {})}
    try:
        response = await fetch(
            context.http, url, context.limits, headers=wanted, form=form, error_body=True
        )
    except FetchError as error:
        raise SourceError(str(error), error.status) from None
    if not 200 <= response.status < 300:
        message = refusal(service, response)
        retry_at = None
        if response.status in (429, 503):
            retry_at = rate_limited_until(response, context.now)
            message += f"; the service asked to wait until {retry_at:%Y-%m-%d %H:%M} UTC"
        raise SourceError(message, response.status, retry_at)
    try:
        data = json.loads(response.body)
    except ValueError:
        raise SourceError(f"{service} sent something that is not JSON", response.status) from None
    return JsonAnswer(response, data)


def refusal(service: str, response: HttpResponse) -> str:
    """`HTTP 401 Unauthorized: <the service's detail>`, in one line."""
    status = f"HTTP {response.status} {response.reason}".strip()
    detail = ""
    try:
        body = json.loads(response.body) if response.body else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        # X: title/detail; Reddit: message/reason; Mastodon: error; Bluesky: error/message.
        keys = ("detail", "message", "error", "reason")
        found = [body[key] for key in keys if isinstance(body.get(key), str) and body[key]]
        # X lists what exactly was wrong under `errors`.
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            found += [str(errors[0].get("message") or errors[0].get("detail") or "")]
        detail = "; ".join(dict.fromkeys(text for text in found if text))
    text = f"{service} answered {status}"
    return f"{text}: {one_line(detail, 200)}" if detail else text


def rate_limited_until(response: HttpResponse, now: datetime) -> datetime | None:
    """When a rate-limited answer says to come back: Retry-After, else a reset header
    (X: `x-rate-limit-reset`, Unix seconds; Reddit: `x-ratelimit-reset`, seconds from now;
    Mastodon: `x-ratelimit-reset`, an ISO time)."""
    delay = retry_delay(response.headers.get("retry-after"), now)
    reset = reset_time(response.headers, now)
    if reset is not None:
        delay = max(delay or timedelta(0), reset - now)
    return not_before(now, delay or timedelta(minutes=1))


def reset_time(headers: Mapping[str, str], now: datetime) -> datetime | None:
    value = (headers.get("x-rate-limit-reset") or headers.get("x-ratelimit-reset") or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    # A Unix time is large; a count of seconds from now is small.
    if number > 1_000_000_000:
        return datetime.fromtimestamp(number, UTC)
    return now + timedelta(seconds=min(number, 86400))


def exhausted(headers: Mapping[str, str]) -> bool:
    """The answer says no request is left in the current window."""
    value = headers.get("x-rate-limit-remaining") or headers.get("x-ratelimit-remaining")
    try:
        return value is not None and float(value) < 1
    except ValueError:
        return False


@dataclass(frozen=True)
class Post:
    """A post as a social source sees it, before it becomes an item."""

    post_url: str  # the post or discussion itself
    shared: str  # the article it links to, or ""
    title: str
    text: str
    published: datetime
    author: str  # the account engagement is compared within ("" for the whole source)
    likes: int = 0
    reposts: int = 0
    comments: int = 0
    views: int | None = None


def post_item(post: Post, now: datetime, max_text_chars: int) -> tuple[NewItem, Engagement]:
    """A post as an item: its identity is the article it shares (so it joins that
    article's story and item), else the post itself."""
    link = canonical_url(post.shared) if post.shared and is_web_url(post.shared) else ""
    link = link or canonical_url(post.post_url)
    text = post.text[:max_text_chars]
    title = one_line(post.title, TITLE_CHARS) or one_line(text, TITLE_CHARS) or link
    item = NewItem(
        id=identity_id(f"url:{link}"),
        url=link,
        title=title,
        text=text,
        published=min(post.published, now),
        content_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
    )
    numbers = Engagement(item.id, post.author, post.likes, post.reposts, post.comments, post.views)
    return item, numbers


def outcome(
    request: FetchRequest,
    context: FetchContext,
    posts: list[Post],
    cursor: Mapping[str, Any],
    *,
    warnings: tuple[str, ...] = (),
    retry_at: datetime | None = None,
) -> FetchOutcome:
    """The outcome of a poll: one item per identity (engagement summed when several posts
    share one article), newest posts first, within max_items_per_source."""
    items: dict[str, NewItem] = {}
    engagement: dict[str, Engagement] = {}
    limit = context.config.max_items_per_source
    for post in sorted(posts, key=lambda p: p.published, reverse=True):
        item, numbers = post_item(post, context.now, context.config.max_text_chars)
        if item.id in engagement:
            seen = engagement[item.id]
            views = None if seen.views is None else seen.views + (numbers.views or 0)
            engagement[item.id] = Engagement(
                item.id,
                seen.author if seen.author == numbers.author else "",
                seen.likes + numbers.likes,
                seen.reposts + numbers.reposts,
                seen.comments + numbers.comments,
                views,
            )
        elif len(items) < limit:
            items[item.id] = item
            engagement[item.id] = numbers
    return FetchOutcome(
        source=request.name,
        status="ok",
        items=tuple(items.values()),
        warnings=warnings,
        http_status=200,
        retry_after=retry_at,
        cursor=json.dumps(dict(cursor), sort_keys=True),
        engagement=tuple(engagement.values()),
    )


def failed(
    request: FetchRequest, error: SourceError, cursor: Mapping[str, Any] | None = None
) -> FetchOutcome:
    """A failed poll; `cursor` keeps what it learned anyway (account ids, rate limits)."""
    return FetchOutcome(
        source=request.name,
        status="error",
        error=str(error),
        http_status=error.status,
        retry_after=error.retry_at,
        cursor=None if cursor is None else json.dumps(dict(cursor), sort_keys=True),
    )


def load_cursor(request: FetchRequest) -> dict[str, Any]:
    """The cursor the last poll left, or an empty one (also when it is unreadable)."""
    try:
        cursor = json.loads(request.cursor) if request.cursor else {}
    except ValueError:
        return {}
    return cursor if isinstance(cursor, dict) else {}


def html_text(html: str, limit: int) -> str:
    return html_to_text(html, limit) if html else ""


def number(value: Any) -> int:
    """A count from an API, 0 when absent or not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def timestamp(value: Any, fallback: datetime) -> datetime:
    """An API's time (ISO text or Unix seconds) as an aware datetime; `fallback` if none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return fallback
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return fallback
