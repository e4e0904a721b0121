"""Feed bytes to items: RSS, Atom and RDF through sources.feedxml's fast path, or feedparser
(on bytes: it never fetches) for what the fast path leaves to it; JSON Feed through
sources.jsonfeed; anything else is NotAFeed with a reason."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

from core.errors import SourceError
from sources.feedxml import as_html, read_feed
from sources.items import ParsedFeed, RawEntry, build_items
from sources.jsonfeed import looks_like_json, parse_json_feed
from sources.text import html_to_text, one_line

_HTML_MARKERS = (b"<!doctype html", b"<html")


class NotAFeed(SourceError):
    """The body is not a feed; the message says what it is instead."""


def parse_feed(
    body: bytes,
    url: str,
    headers: Mapping[str, str],
    now: datetime,
    *,
    source: str,
    max_items: int = 500,
    max_text_chars: int = 20_000,
) -> ParsedFeed:
    """Parse a downloaded feed; `url` is where it came from (relative links resolve to it)."""
    if not body.strip():
        raise NotAFeed("the server sent an empty body")
    response_headers = {key.lower(): value for key, value in headers.items()}
    response_headers.setdefault("content-location", url)
    content_type = response_headers.get("content-type", "")
    if looks_like_json(body, content_type):
        try:
            json_feed = parse_json_feed(body, url)
        except ValueError as error:
            raise NotAFeed(str(error)) from None
        document = _Document(json_feed.title, json_feed.home, json_feed.entries)
    else:
        document = _parse_xml(body, response_headers)
    items = build_items(
        document.entries[:max_items],
        source=source,
        feed_url=url,
        home=document.home,
        now=now,
        max_text_chars=max_text_chars,
    )
    return ParsedFeed(
        title=one_line(html_to_text(document.title)),
        items=items,
        warning=document.warning,
        ttl=document.ttl,
    )


@dataclass(frozen=True)
class _Document:
    title: str
    home: str
    entries: tuple[RawEntry, ...]
    warning: str | None = None
    ttl: timedelta | None = None


def _parse_xml(body: bytes, headers: dict[str, str]) -> _Document:
    fast = read_feed(body, headers)
    if fast is not None:
        problem = fast.encoding_problem
        warning = _bozo_reason(problem) if problem else None
        return _Document(fast.title, fast.home, fast.entries, warning, _ttl(fast.ttl))
    return _parse_with_feedparser(body, headers)


def _parse_with_feedparser(body: bytes, headers: dict[str, str]) -> _Document:
    # Feed content becomes plain text, so feedparser's HTML sanitising and resolving of
    # links inside content are wasted work; entry links are still resolved.
    parsed = feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    warning = _bozo_reason(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    if not parsed.entries:
        if _is_html(body, headers.get("content-type", "")) and not parsed.get("version"):
            raise NotAFeed("got an HTML page, not a feed")
        if not parsed.get("version"):
            detail = f": {parsed.get('bozo_exception')}" if parsed.get("bozo") else ""
            raise NotAFeed(f"no feed found in the response{detail}")
    feed = parsed.feed
    return _Document(
        title=str(feed.get("title", "")),
        home=str(feed.get("link", "")),
        entries=tuple(_entry(entry) for entry in parsed.entries),
        warning=warning,
        ttl=_ttl(str(feed.get("ttl") or "")),
    )


def _entry(entry: Any) -> RawEntry:
    # dict.get where feedparser's own get() would only add its key aliasing, which these
    # keys do not have: it is slow enough to show in a profile.
    title = dict.get(entry, "title_detail") or {}
    return RawEntry(
        title=as_html(str(dict.get(entry, "title") or ""), str(title.get("type", "text/plain"))),
        link=str(dict.get(entry, "link") or ""),
        guid=str(dict.get(entry, "id") or ""),
        html=_entry_html(entry),
        published=_date(entry),
    )


def _entry_html(entry: Any) -> str:
    contents = dict.get(entry, "content") or []
    bodies = [part for part in contents if part.get("value")]
    if bodies:
        body = max(bodies, key=lambda part: len(part["value"]))
        return as_html(str(body["value"]), str(body.get("type", "text/html")))
    summary = dict.get(entry, "summary_detail") or {}
    return as_html(str(dict.get(entry, "summary") or ""), str(summary.get("type", "text/html")))


def _date(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed
        # with a deprecation warning.
        value = dict.get(entry, key)
        if isinstance(value, time.struct_time):
            try:
                return datetime(*value[:6], tzinfo=UTC)
            except (TypeError, ValueError):
                continue
    return None


def _ttl(value: str) -> timedelta | None:
    value = value.strip()
    # RSS ttl is in minutes; more than a year is a typo, and ignored.
    return timedelta(minutes=int(value)) if value.isdigit() and int(value) < 525_600 else None


def _is_html(body: bytes, content_type: str) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return "html" in content_type.lower() or head.startswith(_HTML_MARKERS)


def _bozo_reason(exception: object) -> str:
    if isinstance(exception, CharacterEncodingOverride):
        return f"wrong or missing charset, decoded anyway: {exception}"
    if isinstance(exception, NonXMLContentType):
        return f"not served as XML, parsed anyway: {exception}"
    return f"malformed feed, read what could be read: {exception or 'unknown problem'}"
