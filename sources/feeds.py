"""Feed bytes to items: feedparser on downloaded bytes (it never fetches), then normalisation."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from sources.model import NewItem
from sources.text import html_to_text, one_line
from sources.urls import canonical_url

# Dates further ahead than this are clock skew or typos; they would pin an item to the top.
_FUTURE_SLACK = timedelta(hours=1)
_EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)


class NotAFeed(Exception):
    """The body parsed to nothing a reader would call a feed."""


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: tuple[NewItem, ...]
    warning: str | None  # feedparser's "bozo" reason when it recovered from malformed input


def parse_feed(
    body: bytes,
    url: str,
    headers: Mapping[str, str],
    now: datetime,
    *,
    max_items: int = 500,
    max_text_chars: int = 20_000,
) -> ParsedFeed:
    """Parse a downloaded feed. Raise NotAFeed when it yields no entries and is not a feed."""
    response_headers = {key.lower(): value for key, value in headers.items()}
    # content-location lets feedparser resolve relative links against the real address.
    response_headers.setdefault("content-location", url)
    parsed = feedparser.parse(body, response_headers=response_headers, sanitize_html=False)
    warning = _bozo_reason(parsed) if parsed.get("bozo") else None
    if not parsed.entries:
        if not parsed.get("version") or parsed.get("bozo"):
            detail = f" ({warning})" if warning else ""
            raise NotAFeed(f"no feed found in the response{detail}")
        return ParsedFeed(title=one_line(parsed.feed.get("title", "")), items=(), warning=warning)
    items = [
        item
        for entry in parsed.entries[:max_items]
        if (item := _item(entry, url, now, max_text_chars)) is not None
    ]
    return ParsedFeed(
        title=one_line(parsed.feed.get("title", "")), items=tuple(_unique(items)), warning=warning
    )


def _bozo_reason(parsed: Any) -> str:
    exception = parsed.get("bozo_exception")
    return f"malformed feed, read what could be read: {exception}" if exception else "malformed"


def _item(entry: Any, feed_url: str, now: datetime, max_text_chars: int) -> NewItem | None:
    link = entry.get("link") or ""
    title = one_line(entry.get("title") or "")
    text = html_to_text(_entry_html(entry), max_text_chars)
    if not title and not text:
        return None
    if not title:
        title = one_line(text, 120)
    url = canonical_url(link) if link else feed_url
    published = _published(entry, now)
    content_hash = _hash(title, text)
    guid = entry.get("id") or ""
    # The canonical link identifies an article across feeds; a guid only within one feed.
    if link:
        identity = f"url:{url}"
    elif guid:
        identity = f"guid:{feed_url}:{guid}"
    else:
        identity = f"hash:{feed_url}:{content_hash}"
    return NewItem(
        id="it_" + hashlib.sha256(identity.encode()).hexdigest()[:24],
        url=url,
        title=title,
        text=text,
        published=published,
        content_hash=content_hash,
    )


def _entry_html(entry: Any) -> str:
    contents = entry.get("content") or []
    bodies = [part.get("value", "") for part in contents if part.get("value")]
    if bodies:
        return str(max(bodies, key=len))
    return str(entry.get("summary") or entry.get("description") or "")


def _published(entry: Any, now: datetime) -> datetime:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                year, month, day, hour, minute, second = parsed[:6]
                moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError):
                continue
            if moment < _EARLIEST:
                continue
            return min(moment, now + _FUTURE_SLACK)
    return now


def _hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def _unique(items: list[NewItem]) -> list[NewItem]:
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            unique.append(item)
    return unique
