"""JSON Feed 1.0/1.1 (jsonfeed.org), which feedparser does not read, to the same entries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from sources.items import RawEntry


@dataclass(frozen=True)
class JsonFeed:
    title: str
    home: str
    entries: tuple[RawEntry, ...]


def looks_like_json(body: bytes, content_type: str) -> bool:
    return "json" in content_type.lower() or body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def parse_json_feed(body: bytes, base_url: str) -> JsonFeed:
    """Raise ValueError, saying why, when the body is not a JSON Feed."""
    try:
        document = json.loads(body.decode("utf-8-sig", errors="replace"))
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to be a feed") from None
    except ValueError as error:
        raise ValueError(f"got invalid JSON, not a feed: {error}") from None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or "jsonfeed.org" not in version:
        raise ValueError("got JSON, but not a JSON Feed (no jsonfeed.org version)")
    home = urljoin(base_url, _text(document.get("home_page_url")))
    items = document.get("items")
    entries = tuple(
        _entry(item, base_url)
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    )
    return JsonFeed(title=_text(document.get("title")), home=home, entries=entries)


def _entry(item: dict[str, Any], base_url: str) -> RawEntry:
    link = _text(item.get("url")) or _text(item.get("external_url"))
    html = _text(item.get("content_html"))
    if not html:
        # Plain text is escaped so that the HTML-to-text step leaves it as written.
        plain = _text(item.get("content_text")) or _text(item.get("summary"))
        html = plain.replace("&", "&amp;").replace("<", "&lt;")
    return RawEntry(
        title=_text(item.get("title")),
        link=urljoin(base_url, link) if link else "",
        guid=_text(item.get("id")),
        html=html,
        published=_date(item.get("date_published")) or _date(item.get("date_modified")),
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # JSON Feed ids are strings, but numbers are common in the wild.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None
