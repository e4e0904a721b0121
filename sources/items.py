"""Feed entries to stored items: plain text, sane dates, and an identity stable across runs.

Identity, per entry: its canonical link (so the same article from two feeds is one item),
else its GUID within the source, else a hash of its content. Links and GUIDs a feed uses
badly are not identities: a link to the feed's home page or site root, or a link or GUID
that the feed gives to entries that differ. Entries carrying those fall back to the next rule.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from core.items import NewItem
from core.urls import canonical_url, reader_url
from sources.text import html_to_text, one_line

# Before this a date is a parsing accident (1970, year 1), not a publication time.
_EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RawEntry:
    """One entry as a feed format gives it, before normalisation."""

    title: str
    link: str
    guid: str
    html: str
    published: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    """What sources.parse.parse_feed makes of a feed. Here, not beside it: a parsing
    process sends these back pickled, and unpickling one in the collecting process imports
    its module, which for sources.parse is feedparser and lxml (50 ms of CPU, for nothing)."""

    title: str
    items: tuple[NewItem, ...]
    warning: str | None  # why feedparser had to recover from malformed input
    ttl: timedelta | None  # RSS <ttl>: how long the feed asks to be cached


@dataclass(frozen=True)
class _Prepared:
    title: str
    text: str
    link: str  # canonical, or "" when the entry has none: its identity
    reader_link: str  # the publisher's, without tracking parameters: what readers get
    guid: str
    published: datetime
    content_hash: str


def build_items(
    entries: Sequence[RawEntry],
    *,
    source: str,
    feed_url: str,
    home: str,
    now: datetime,
    max_text_chars: int,
) -> tuple[NewItem, ...]:
    """Normalised items in feed order, one per identity (the first entry wins)."""
    prepared = [p for entry in entries if (p := _prepare(entry, now, max_text_chars))]
    feed_pages = {canonical_url(url) for url in (home, feed_url) if url}
    bad_links = _ambiguous(prepared, "link") | feed_pages
    bad_links |= {p.link for p in prepared if p.link and _is_site_root(p.link)}
    bad_guids = _ambiguous(prepared, "guid")
    items: dict[str, NewItem] = {}
    for entry in prepared:
        if entry.link and entry.link not in bad_links:
            identity = f"url:{entry.link}"
        elif entry.guid and entry.guid not in bad_guids:
            identity = f"guid:{source}:{entry.guid}"
        else:
            identity = f"hash:{source}:{entry.content_hash}"
        item_id = identity_id(identity)
        items.setdefault(
            item_id,
            NewItem(
                id=item_id,
                url=entry.reader_link or reader_url(home or feed_url),
                title=entry.title,
                text=entry.text,
                published=entry.published,
                content_hash=entry.content_hash,
            ),
        )
    return tuple(items.values())


def identity_id(identity: str) -> str:
    """An item's id from its identity (`url:<canonical link>`, ...): the same link gives the
    same id whichever source brings it, so a post sharing an article is that article."""
    return "it_" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def _prepare(entry: RawEntry, now: datetime, max_text_chars: int) -> _Prepared | None:
    title = one_line(html_to_text(entry.title))
    text = html_to_text(entry.html, max_text_chars)
    if not title and not text:
        return None
    # The text is plain already: decoding it again would eat what looks like markup.
    title = title or one_line(text, 120)
    return _Prepared(
        title=title,
        text=text,
        link=canonical_url(entry.link) if entry.link.strip() else "",
        reader_link=reader_url(entry.link),
        guid=entry.guid.strip(),
        published=_published(entry.published, now),
        content_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
    )


def _published(moment: datetime | None, now: datetime) -> datetime:
    """No date, or an impossible one, is the fetch time; a future date is clamped to now."""
    if moment is None:
        return now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment < _EARLIEST:
        return now
    return min(moment, now)


def _ambiguous(entries: Iterable[_Prepared], key: str) -> set[str]:
    """Values of `key` that the feed gives to two entries with different titles."""
    titles: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if value := getattr(entry, key):
            titles[value].add(entry.title)
    return {value for value, seen in titles.items() if len(seen) > 1}


def _is_site_root(url: str) -> bool:
    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query
