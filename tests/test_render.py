"""What readers get from a stored digest: Markdown, text, HTML, Slack blocks, the archive."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import feedparser
import sample_digests as samples
from loopback.slack import validate_payload

from core.digest import Trend
from core.items import StoredItem
from digests import archive, blockkit, render
from digests.validate import digest_items


class Elements(HTMLParser):
    """Every element and attribute of a page, to check what a browser would act on."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(page)
    return parser.tags


def test_every_format_carries_every_trend_with_its_sources_in_rank_order():
    digest = samples.digest()
    for text in (render.markdown(digest), render.text(digest), render.html(digest)):
        positions = [text.index(trend.title) for trend in digest.trends]
        assert positions == sorted(positions)
        for trend in digest.trends:
            for item in trend.items:
                assert item.url in text and item.source in text and item.title in text
        assert "Why it matters" in text and "26 Nov 2026, 20:53 UTC" in text
        assert "(developing)" in text or ">developing<" in text


def test_html_escapes_feed_and_model_text_and_links_only_to_http():
    page = render.html(samples.hostile())
    tags = elements(page)
    assert not [tag for tag, _ in tags if tag in {"script", "img", "iframe", "svg", "b"}]
    assert not [name for _, attrs in tags for name in attrs if name.startswith("on")]
    hrefs = [attrs["href"] or "" for tag, attrs in tags if tag == "a"]
    assert hrefs and all(href.startswith("https://") for href in hrefs)
    assert not [v for _, attrs in tags for v in attrs.values() if "javascript" in (v or "")]
    # The text is still there for the reader, as text.
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "Click me" in page


def test_markdown_and_text_keep_hostile_text_inert():
    digest = samples.hostile()
    markdown = render.markdown(digest)
    # Every angle bracket is backslash-escaped except the digest's own link destinations.
    assert not re.findall(r"(?<!\\)<(?!https://)", markdown)
    assert "\\[link\\](javascript" in markdown
    assert "javascript:" not in render.text(digest).split("Click me")[1].split("\n")[1]


def test_slack_escapes_only_ampersand_and_angle_brackets():
    [message] = blockkit.messages(samples.hostile(), archive=True)
    validate_payload(message.payload())
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    body = "\n".join(texts)
    assert "&lt;script&gt;" in body and "&lt;!channel&gt; &amp; &lt;https://evil.example" in body
    assert "<!channel>" not in body and "<javascript:" not in body
    assert "[link](javascript:alert(1))" in body  # no other escaping
    # The only raw angle brackets left are the digest's own links, to http(s) URLs.
    links = [part.split("|")[0] for part in body.split("<")[1:]]
    assert links and all(link.startswith("https://") for link in links)


def test_slack_splits_a_huge_digest_into_valid_ordered_messages_without_losing_text():
    digest = samples.huge(trends=60, summary_chars=5000)
    messages = blockkit.messages(digest, archive=True)
    assert len(messages) > 1
    for message in messages:
        validate_payload(message.payload())
    assert messages[0].blocks[0]["type"] == "header"
    assert all(
        m.text.endswith(f"(part {n} of {len(messages)})") for n, m in enumerate(messages[1:], 2)
    )
    sections = [b["text"]["text"] for m in messages for b in m.blocks if b["type"] == "section"]
    flat = " ".join(sections).replace("\n", " ")
    ranks = [flat.index(f"*{trend.rank}. ") for trend in digest.trends]
    assert ranks == sorted(ranks)
    whole_summary = blockkit.escape(" ".join(digest.trends[0].summary.split()))
    assert flat.count(whole_summary) == len(digest.trends)


def test_slack_header_is_clipped_to_its_limit_and_text_names_the_profile():
    digest = samples.digest(profile="p" * 200)
    [message] = blockkit.messages(digest, archive=False)
    validate_payload(message.payload())
    assert len(message.blocks[0]["text"]["text"]) <= blockkit.MAX_HEADER_TEXT
    assert message.text.startswith("p" * 50)


def test_a_quiet_digest_says_so_everywhere():
    quiet = samples.digest(())
    assert "Nothing notable this time." in render.markdown(quiet)
    assert "Nothing notable this time." in render.text(quiet)
    assert "Nothing notable this time." in render.html(quiet)
    [message] = blockkit.messages(quiet, archive=True)
    validate_payload(message.payload())


def test_atom_feed_parses_cleanly_and_lists_digests_newest_first():
    from datetime import timedelta

    digests = [samples.digest(created=samples.CREATED + timedelta(days=n)) for n in range(3)] + [
        samples.hostile().model_copy(update={"id": "x-1", "created_at": samples.CREATED})
    ]
    feed = feedparser.parse(archive.atom_feed("morning-brief", digests).encode())
    assert feed.bozo is False, feed.get("bozo_exception")
    assert feed.feed.title == "morning-brief digests"
    assert len(feed.entries) == 4
    assert feed.entries[0].link.endswith("20261129T070000Z.html")
    assert feed.entries[0].id != feed.entries[1].id
    assert "Story 1" in feed.entries[0].title
    content = feed.entries[0].content[0].value
    assert "https://news2.example/story/10" in content
    index = archive.index_html("morning-brief", digests)
    assert index.index("20261129T070000Z") < index.index("20261127T070000Z")
    assert "&lt;script&gt;" in index and "<script>" not in index


def test_atom_feed_drops_characters_xml_forbids():
    bad = samples.digest(
        (samples.trend(1, title="Vertical\x0btab and \x01 control"),), notes=("form\x0cfeed",)
    )
    feed = feedparser.parse(archive.atom_feed("morning-brief", [bad]).encode())
    assert feed.bozo is False
    assert "\x01" not in feed.entries[0].title and "Vertical tab" in feed.entries[0].title


def story_items(counts: dict[str, int]) -> list[StoredItem]:
    """A story's stored items, `counts[outlet]` of them from each outlet."""
    published = samples.CREATED - timedelta(hours=1)
    return [
        StoredItem(
            id=f"{outlet}-{n}",
            url=f"https://{outlet}.example/story/{n}",
            title=f"{outlet} report {n}",
            text="",
            published=published,
            fetched=published,
            sources=(outlet,),
            story_id="s1",
        )
        for outlet, count in counts.items()
        for n in range(count)
    ]


# 41 items: 36 from one outlet, one from each of five others. Six are listed (one per outlet
# first), so the 35 not listed all come from the one outlet.
WIDE_STORY = {"wire": 36, "ledger": 1, "herald": 1, "courier": 1, "gazette": 1, "post": 1}


def wide_trend() -> Trend:
    return samples.trend(1).model_copy(update=vars(digest_items(story_items(WIDE_STORY))))


def test_every_format_says_how_many_more_items_a_story_has_and_from_how_many_outlets():
    trend = wide_trend()
    assert len(trend.items) == 6
    digest = samples.digest((trend,))
    for page in (
        render.html(digest),
        render.text(digest),
        render.markdown(digest),
        archive.atom_feed("morning-brief", [digest]),
    ):
        assert "and 35 more items from 1 outlet" in " ".join(page.split()), page
    # A trend listing every item of its story says nothing more.
    assert "more item" not in render.html(samples.digest())


def test_slack_counts_the_items_it_leaves_out_and_mentions_an_archive_only_when_there_is_one():
    digest = samples.digest((wide_trend(), samples.trend(2, items=4)))
    # Slack lists 3 links: 3 more listed elsewhere from 3 outlets, and the 35 from "wire".
    [kept] = blockkit.messages(digest, archive=True)
    [no_archive] = blockkit.messages(digest, archive=False)
    kept_text = json.dumps(kept.payload())
    no_archive_text = json.dumps(no_archive.payload())
    assert "_and 38 more items from 4 outlets in the archive_" in kept_text
    assert "_and 38 more items from 4 outlets_" in no_archive_text
    assert "_and 1 more item from 1 outlet_" in no_archive_text
    assert "archive" not in no_archive_text
    assert "sources in the archive" not in kept_text


def test_a_wrapped_headline_in_the_text_part_continues_under_its_text():
    long_title = "Regulators on three continents respond " * 4 + "today"
    digest = samples.digest(
        (samples.trend(1, title=long_title), samples.trend(10, title=long_title))
    )
    lines = render.text(digest).splitlines()
    for number in ("1. ", "10. "):
        start = lines.index(next(line for line in lines if line.startswith(number + "Regul")))
        end = next(n for n in range(start, len(lines)) if "Several outlets" in lines[n])
        headline = lines[start:end]
        assert len(headline) >= 2, headline
        assert all(line[: len(number)] == " " * len(number) for line in headline[1:]), headline
        assert all(line[len(number)] != " " for line in headline[1:]), headline
        assert " ".join(line.strip() for line in headline) == f"{number}{long_title}".strip()
