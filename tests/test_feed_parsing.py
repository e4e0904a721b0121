"""Feed bytes to items: identity, text, dates, JSON Feed, and what is not a feed."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from core.items import FetchOutcome
from core.retry import retry_delay
from core.urls import canonical_url
from sources.parse import NotAFeed, parse_feed
from sources.policy import max_age, next_attempt, not_before
from sources.text import html_to_text

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.example/feed.xml"


def rss(*items: str, channel: str = "<link>https://news.example/</link>", extra: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>News</title>{channel}{extra}{''.join(items)}</channel></rss>"
    ).encode()


def item(title: str, link: str | None = None, guid: str | None = None, body: str = "") -> str:
    parts = [f"<title>{title}</title>"]
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f"<guid isPermaLink='false'>{guid}</guid>")
    if body:
        parts.append(f"<description>{body}</description>")
    return f"<item>{''.join(parts)}</item>"


def parse(body: bytes, source: str = "news", **headers: str) -> list:
    return list(parse_feed(body, FEED_URL, headers, NOW, source=source).items)


def test_tracking_parameters_fragments_default_ports_and_case_do_not_make_a_new_url():
    assert (
        canonical_url("HTTPS://News.Example:443/a/b?id=7&utm_source=rss&fbclid=x#comments")
        == "https://news.example/a/b?id=7"
    )
    assert canonical_url("http://news.example:8080/a") == "http://news.example:8080/a"


def test_the_same_article_from_two_feeds_is_one_item():
    first = parse(rss(item("Storm", "https://news.example/storm?utm_medium=feed")), "a")
    second = parse(rss(item("Storm", "https://NEWS.example/storm#top")), "b")
    assert first[0].id == second[0].id
    assert first[0].url == "https://news.example/storm"


def test_identity_is_stable_across_runs_and_an_edit_keeps_the_id_but_changes_the_hash():
    before = parse(rss(item("Storm", "https://news.example/s", body="First version")))
    again = parse(rss(item("Storm", "https://news.example/s", body="First version")))
    edited = parse(rss(item("Storm", "https://news.example/s", body="Second version")))
    assert before == again
    assert edited[0].id == before[0].id
    assert edited[0].content_hash != before[0].content_hash


def test_a_guid_repeated_on_different_entries_does_not_merge_them():
    items = parse(
        rss(*(item(f"Story {n}", f"https://news.example/{n}", guid="same") for n in range(3)))
    )
    assert len({i.id for i in items}) == 3


def test_entries_that_all_link_to_the_home_page_fall_back_to_their_guids():
    body = rss(*(item(f"Story {n}", "https://news.example/", guid=f"g{n}") for n in range(3)))
    items = parse(body)
    assert len({i.id for i in items}) == 3
    assert parse(body) == items


def test_without_usable_links_or_guids_items_are_told_apart_by_content():
    body = rss(*(item(f"Story {n}", "https://news.example/", guid="1") for n in range(3)))
    items = parse(body)
    assert [i.title for i in items] == ["Story 0", "Story 1", "Story 2"]
    assert len({i.id for i in items}) == 3
    assert parse(body) == items
    no_identity = parse(rss(item("Only a title"), item("Another title")))
    assert len({i.id for i in no_identity}) == 2
    assert all(i.url == "https://news.example/" for i in no_identity)


def test_guid_identities_belong_to_their_source():
    body = rss(item("Notice", guid="notice-1"))
    assert parse(body, "a")[0].id != parse(body, "b")[0].id


def test_a_repeated_entry_is_one_item():
    twice = item("Storm", "https://news.example/storm", guid="s1", body="Same")
    assert len(parse(rss(twice, twice))) == 1


def test_feed_html_becomes_capped_plain_text_without_scripts():
    body = (
        "&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&amp;amp; co.&lt;/p&gt;"
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;p&gt;" + "word " * 5000 + "&lt;/p&gt;"
    )
    [entry] = parse_feed(
        rss(item("A &lt;i&gt;title&lt;/i&gt;", "https://news.example/t", body=body)),
        FEED_URL,
        {},
        NOW,
        source="news",
        max_text_chars=300,
    ).items
    assert entry.title == "A title"
    assert entry.text.startswith("Hello world& co.")
    assert "alert" not in entry.text and "<" not in entry.text
    assert len(entry.text) <= 300


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One &amp; <b>two</b></p><p>Three<br/>four</p>", "One & two\n\nThree\n\nfour"),
        ("<a title='a > b' href=\"x\">link</a> text", "link text"),
        ("<script>if (a<b) document.write('<p>x</p>')</script>kept", "kept"),
        ("<STYLE>p {}</style ><svg><text>drawn</text></svg>after", "after"),
        ("before<!-- a <p> comment -->after<!DOCTYPE html><?pi?>", "beforeafter"),
        ("1 < 2 and 3 > 2 &lt;p&gt; &#39;q&#39; &nbsp;end", "1 < 2 and 3 > 2 <p> 'q' end"),
        ("</ p>a<br>b<script/>c<!-- never closed", "a\nbc"),
    ],
)
def test_html_becomes_plain_text(html, text):
    assert html_to_text(html) == text


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "hostile", ["<a " * 50_000, "<!--" * 50_000, "</" * 50_000, "<a '" * 30_000 + ">"]
)
def test_hostile_markup_is_read_in_linear_time(hostile):
    # html.parser needs minutes for the first of these.
    assert "\n" not in html_to_text(hostile, 100)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Thu, 26 Nov 2026 08:30:00 GMT", datetime(2026, 11, 26, 8, 30, tzinfo=UTC)),
        ("Thu, 26 Nov 2026 08:30:00 +0200", datetime(2026, 11, 26, 6, 30, tzinfo=UTC)),
        ("Sat, 01 Jan 2039 00:00:00 GMT", NOW),  # the future is clamped to the fetch time
        ("Thu, 01 Jan 1970 00:00:00 GMT", NOW),  # an epoch accident is no date
        ("not a date at all", NOW),
        ("Mon, 99 Zzz 99999 99:99:99 GMT", NOW),
    ],
)
def test_dates_are_parsed_clamped_or_replaced_by_the_fetch_time(date, expected):
    entry = (
        f"<item><title>T</title><link>https://news.example/t</link><pubDate>{date}</pubDate></item>"
    )
    assert parse(rss(entry))[0].published == expected


def test_a_missing_date_is_the_fetch_time():
    assert parse(rss(item("T", "https://news.example/t")))[0].published == NOW


def test_relative_links_resolve_against_the_feed_address():
    [entry] = parse(rss(item("T", "/2026/11/t.html"), channel=""))
    assert entry.url == "https://news.example/2026/11/t.html"


def test_json_feed_items_have_titles_links_text_and_dates():
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON News",
        "home_page_url": "https://json.example/",
        "items": [
            {
                "id": "1",
                "url": "https://json.example/a?utm_campaign=x",
                "title": "First",
                "content_html": "<p>Hello <em>there</em></p>",
                "date_published": "2026-11-26T10:00:00Z",
            },
            {
                "id": 2,
                "url": "/b",
                "content_text": "No title, 2 < 3 & plain text",
                "date_modified": "2026-11-26T11:00:00+01:00",
            },
            {"id": "3", "title": "No link or date"},
            "not an object",
        ],
    }
    feed = parse_feed(
        json.dumps(document).encode(), "https://json.example/feed.json", {}, NOW, source="j"
    )
    first, second, third = feed.items
    assert feed.title == "JSON News"
    assert (first.title, first.url, first.text) == (
        "First",
        "https://json.example/a",
        "Hello there",
    )
    assert first.published == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert second.title == "No title, 2 < 3 & plain text" and second.url == "https://json.example/b"
    assert second.published == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert third.published == NOW and third.url == "https://json.example/"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "application/rss+xml", "empty body"),
        (b"  \n ", "application/rss+xml", "empty body"),
        (b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "text/html", "HTML page"),
        (b"<html><body>no doctype</body></html>", "application/xml", "HTML page"),
        (b'{"items": []}', "application/json", "not a JSON Feed"),
        (b"{not json", "application/json", "invalid JSON"),
        (b"[" * 100_000, "application/json", "JSON"),
        (b"just some text", "text/plain", "no feed found"),
    ],
)
def test_what_is_not_a_feed_says_what_it_is(body, content_type, reason):
    with pytest.raises(NotAFeed, match=reason):
        parse(body, **{"content-type": content_type})


def test_a_valid_feed_with_no_entries_is_fine():
    assert parse(rss()) == []


def test_malformed_xml_still_yields_what_it_can_with_a_warning():
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>'
        b"<item><title>One & two</title><link>https://news.example/1</link></item>"
        b"<item><title>Second<b></title><link>https://news.example/2</link></item></channel>"
    )
    feed = parse_feed(body, FEED_URL, {"content-type": "application/rss+xml"}, NOW, source="b")
    assert [i.title for i in feed.items] == ["One & two", "Second"]
    assert feed.warning and "malformed feed" in feed.warning


def test_rss_ttl_is_read_in_minutes():
    feed = parse_feed(rss(extra="<ttl>90</ttl>"), FEED_URL, {}, NOW, source="t")
    assert feed.ttl == timedelta(minutes=90)


def test_retry_after_accepts_seconds_and_http_dates_and_ignores_garbage():
    assert retry_delay("120", NOW) == timedelta(seconds=120)
    assert retry_delay("Fri, 27 Nov 2026 13:00:00 GMT", NOW) == timedelta(hours=1)
    assert retry_delay("Fri, 27 Nov 2026 11:00:00 GMT", NOW) == timedelta(0)
    assert retry_delay("soon", NOW) is None
    assert retry_delay("9" * 40, NOW) == timedelta(days=1)


def test_cache_control_max_age_is_a_lower_bound_capped_at_a_day():
    assert max_age({"cache-control": "public, max-age=600"}) == timedelta(minutes=10)
    assert max_age({"cache-control": "no-cache, max-age=600"}) is None
    assert max_age({}) is None
    assert not_before(NOW, timedelta(minutes=10), None, timedelta(hours=2)) == NOW + timedelta(
        hours=2
    )
    assert not_before(NOW, timedelta(days=365)) == NOW + timedelta(days=1)
    assert not_before(NOW, None) is None


def test_failures_back_off_exponentially_with_jitter_and_honour_the_server():
    failed = FetchOutcome(source="s", status="error", error="x")
    interval = timedelta(minutes=30)
    delays = [
        next_attempt(failed, interval, failures, NOW, random.Random(1)) - NOW
        for failures in range(8)
    ]
    assert delays[0] >= timedelta(minutes=24) and delays[1] >= timedelta(minutes=48)
    assert all(later > earlier for earlier, later in itertools.pairwise(delays[:5]))
    assert max(delays) <= timedelta(days=1) * 1.2
    jittered = {next_attempt(failed, interval, 3, NOW, random.Random(seed)) for seed in range(5)}
    assert len(jittered) == 5
    asked = FetchOutcome(source="s", status="ok", retry_after=NOW + timedelta(hours=5))
    assert next_attempt(asked, interval, 0, NOW) == NOW + timedelta(hours=5)


def test_feedparser_sped_up_returns_exactly_what_it_returns_unchanged(shared_data, monkeypatch):
    import feedparser.api
    import feedparser.mixin
    import feedparser.urls

    memo = feedparser.mixin.make_safe_absolute_uri
    bodies = [path.read_bytes() for path in sorted((shared_data / "feeds").glob("*/*.xml"))]
    bodies.append(
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://a.example/blog/">'
        b"<title>A</title><entry xml:base='posts/'><title>One</title><link href='1.html'/>"
        b"<id>tag:a,1</id><summary type='html'>&lt;p&gt;x &amp;amp; y&lt;/p&gt;\nz</summary>"
        b"</entry><entry><title>Two</title><link href='javascript:alert(1)'/></entry></feed>"
    )

    def parse_all() -> list[tuple[object, ...]]:
        results = []
        for body in bodies:
            parsed = feedparser.parse(
                body,
                response_headers={"content-location": "https://a.example/feed"},
                sanitize_html=False,
                resolve_relative_uris=False,
            )
            results.append((parsed.feed, parsed.entries, parsed.bozo, parsed.version))
        return results

    hits = memo.cache_info().hits  # type: ignore[attr-defined]
    sped_up = parse_all()
    assert memo.cache_info().hits > hits  # type: ignore[attr-defined]
    monkeypatch.setattr(
        feedparser.mixin,
        "make_safe_absolute_uri",
        feedparser.urls.make_safe_absolute_uri,
    )
    monkeypatch.setattr(feedparser.api, "PREFERRED_XML_PARSERS", [])
    assert sped_up == parse_all()
