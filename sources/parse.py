"""Feed bytes to items: RSS, Atom and RDF through feedparser (on bytes: it never fetches),
JSON Feed through sources.jsonfeed; anything else is NotAFeed with a reason."""

from __future__ import annotations

import functools
import time
import xml.sax.expatreader
import xml.sax.xmlreader
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import feedparser.api
import feedparser.mixin
import feedparser.urls
from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

from core.errors import SourceError
from core.items import NewItem
from sources.items import RawEntry, build_items
from sources.jsonfeed import looks_like_json, parse_json_feed
from sources.text import one_line

_HTML_MARKERS = (b"<!doctype html", b"<html")

# Two changes to how feedparser runs, not to what it returns; each cuts its CPU time on a
# typical feed (30 items, escaped HTML in the descriptions) by the share given.
#
# At every start tag feedparser joins the base URI (the document's, or an xml:base) with
# itself to keep it absolute and safe (20%): the join is a pure function of two strings.
feedparser.mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=1024)(
    feedparser.urls.make_safe_absolute_uri
)


class _BufferedExpatParser(xml.sax.expatreader.ExpatParser):
    """The expat SAX reader, handing text over in one piece per run of text instead of one
    per line and per entity (8%, with the failed import of the libxml2 driver that
    feedparser tries first on every parse)."""

    def reset(self) -> None:
        super().reset()
        self._parser.buffer_text = True  # type: ignore[attr-defined]


def create_parser() -> xml.sax.xmlreader.XMLReader:
    """The xml.sax driver entry point: feedparser asks xml.sax.make_parser for this module."""
    return _BufferedExpatParser()


feedparser.api.PREFERRED_XML_PARSERS[:] = [__name__]


class NotAFeed(SourceError):
    """The body is not a feed; the message says what it is instead."""


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: tuple[NewItem, ...]
    warning: str | None  # why feedparser had to recover from malformed input
    ttl: timedelta | None  # RSS <ttl>: how long the feed asks to be cached


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
        title=one_line(document.title), items=items, warning=document.warning, ttl=document.ttl
    )


@dataclass(frozen=True)
class _Document:
    title: str
    home: str
    entries: tuple[RawEntry, ...]
    warning: str | None = None
    ttl: timedelta | None = None


def _parse_xml(body: bytes, headers: dict[str, str]) -> _Document:
    # Feed content becomes plain text, so feedparser's HTML sanitising and resolving of
    # links inside content are wasted work; entry links are still resolved.
    parsed = feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    warning = _bozo_reason(parsed) if parsed.get("bozo") else None
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
        ttl=_ttl(feed),
    )


def _entry(entry: Any) -> RawEntry:
    # dict.get where feedparser's own get() would only add its key aliasing, which these
    # keys do not have: it is slow enough to show in a profile.
    return RawEntry(
        title=str(dict.get(entry, "title") or ""),
        link=str(dict.get(entry, "link") or ""),
        guid=str(dict.get(entry, "id") or ""),
        html=_entry_html(entry),
        published=_date(entry),
    )


def _entry_html(entry: Any) -> str:
    contents = dict.get(entry, "content") or []
    bodies = [part.get("value", "") for part in contents if part.get("value")]
    if bodies:
        return str(max(bodies, key=len))
    return str(entry.get("summary") or entry.get("description") or "")


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


def _ttl(feed: Any) -> timedelta | None:
    value = str(feed.get("ttl") or "").strip()
    # RSS ttl is in minutes; more than a year is a typo, and ignored.
    return timedelta(minutes=int(value)) if value.isdigit() and int(value) < 525_600 else None


def _is_html(body: bytes, content_type: str) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return "html" in content_type.lower() or head.startswith(_HTML_MARKERS)


def _bozo_reason(parsed: Any) -> str:
    exception = parsed.get("bozo_exception")
    if isinstance(exception, CharacterEncodingOverride):
        return f"wrong or missing charset, decoded anyway: {exception}"
    if isinstance(exception, NonXMLContentType):
        return f"not served as XML, parsed anyway: {exception}"
    return f"malformed feed, read what could be read: {exception or 'unknown problem'}"
