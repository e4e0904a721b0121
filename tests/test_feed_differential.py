"""The fast feed path (sources.feedxml on lxml) gives the same items as feedparser, on every
shared capture, spec example and odd feed in tests/data/odd-feeds/, as each server type
would label it; what it does not model, feedparser reads."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import sources.parse
from sources.feedxml import read_feed
from sources.parse import NotAFeed, ParsedFeed, parse_feed

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ODD = Path(__file__).parent / "data" / "odd-feeds"
URL = "https://odd.example/feed.xml"
CONTENT_TYPES = ("application/rss+xml", "text/xml; charset=utf-8", "application/xml", "text/html")


def _parse(body: bytes, content_type: str) -> ParsedFeed | str:
    try:
        return parse_feed(body, URL, {"content-type": content_type}, NOW, source="s")
    except NotAFeed as error:
        return f"NotAFeed: {error}"


def _corpus(shared: Path) -> list[Path]:
    return [*sorted((shared / "feeds").glob("*/*.xml")), *sorted(ODD.iterdir())]


def test_the_fast_path_gives_feedparsers_items_on_every_feed(shared_data, monkeypatch):
    fast_reads = 0
    for path in _corpus(shared_data):
        body = path.read_bytes()
        for content_type in CONTENT_TYPES:
            fast = _parse(body, content_type)
            headers = {"content-type": content_type, "content-location": URL}
            fast_reads += read_feed(body, headers) is not None
            with monkeypatch.context() as patched:
                patched.setattr(sources.parse, "read_feed", lambda *args: None)
                slow = _parse(body, content_type)
            assert fast == slow, f"{path.name} as {content_type}"
    # Most of the corpus takes the fast path (else this test would prove little).
    assert fast_reads > len(_corpus(shared_data)) * 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("latin1.xml", True),
        ("windows-1252.xml", True),
        ("rss-namespaces.xml", True),
        ("rdf-items.xml", True),
        ("atom-xml-base.xml", False),  # base URIs below the root: feedparser's
        ("rss-item-base.xml", False),  # ...in any case (feedparser lower-cases names)
        ("rss-root-xml-base.xml", True),  # the root's base URI is modelled
        ("atom-root-xml-base.xml", True),
        ("rss-root-relative-base.xml", True),
        ("rss-unsafe-root-base.xml", True),
        ("rss-doctype.xml", False),  # a DTD may declare entities
        ("rss-broken-unclosed.xml", False),  # feedparser repairs it
        ("mislabelled-latin1-as-utf8.xml", True),  # with feedparser's charset warning
    ],
)
def test_what_the_fast_path_reads_and_what_it_leaves_to_feedparser(name, expected):
    body = (ODD / name).read_bytes()
    headers = {"content-type": "application/rss+xml", "content-location": URL}
    assert (read_feed(body, headers) is not None) is expected


def test_importing_the_parser_leaves_feedparser_as_it_was():
    check = (
        "import feedparser, feedparser.api, feedparser.mixin, feedparser.urls\n"
        "before = (feedparser.mixin.make_safe_absolute_uri, "
        "list(feedparser.api.PREFERRED_XML_PARSERS))\n"
        "import sources.parse, sources.workers\n"
        "after = (feedparser.mixin.make_safe_absolute_uri, "
        "list(feedparser.api.PREFERRED_XML_PARSERS))\n"
        "assert before == after, (before, after)\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", check], check=True, cwd=root, timeout=60)
