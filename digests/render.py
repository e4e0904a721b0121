"""Render a stored digest for people: Markdown, plain text and HTML; JSON is its own body.

Every string from a feed or the model is treated as untrusted: Markdown escapes it, the
HTML templates autoescape it, and only http(s) links become links.
"""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from core.digest import Digest, DigestItem, TopicTrend, Trend
from core.urls import is_web_url
from core.votes import VoteLinks
from digests import charts

# Enough to keep text inert (no links, images, HTML or emphasis), little enough to stay readable.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
# Characters XML 1.0 forbids (a feed may carry them; an Atom feed with one is not well-formed).
_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_TEXT_WIDTH = 76
REVIEW = "The period in review"
UP, DOWN = "👍 More like this", "👎 Less like this"


def _md(text: str) -> str:
    """Feed and model text as inert Markdown: no links, images or HTML can be smuggled in."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _link(item: DigestItem) -> str:
    label = f"{_md(item.source)}: {_md(item.title)}"
    if not is_web_url(item.url):
        return label
    url = item.url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
    return f"[{label}](<{url}>)" if ">" not in url else label


def when(digest: Digest) -> str:
    return f"{digest.window.from_:%Y-%m-%d %H:%M} to {digest.window.to:%Y-%m-%d %H:%M} UTC"


def stamp(moment: datetime) -> str:
    """A reader's time: 27 Nov 2026, 06:10 UTC."""
    return f"{moment.astimezone(UTC):%d %b %Y, %H:%M} UTC"


def title(digest: Digest) -> str:
    if digest.kind == "alert":
        return f"{digest.profile}: alert, {digest.created_at:%Y-%m-%d %H:%M} UTC"
    if digest.kind == "report":
        return f"{digest.profile}: report to {digest.created_at:%Y-%m-%d}"
    return f"{digest.profile}: what matters, {digest.created_at:%Y-%m-%d}"


def topic_line(topic: TopicTrend) -> str:
    """outage: in 4 stories (5.2 sd above its baseline)."""
    count = f"{topic.stories} stor{'y' if topic.stories == 1 else 'ies'}"
    return f"{topic.term}: in {count} ({topic.significance:.1f} sd above its baseline)"


def byline(digest: Digest) -> str:
    return (
        f"{digest.stats.items} items from {digest.stats.sources} sources, {when(digest)}; "
        f"analyzer: {digest.analyzer}"
    )


def developing(trend: Trend) -> str:
    return " (developing)" if trend.status == "developing" else ""


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def more(trend: Trend, listed: int) -> str:
    """What a reader shown the first `listed` items does not see: "and 35 more items from 12
    outlets" (the outlets of those items), or "" when they see them all."""
    items, outlets = trend.unlisted(listed)
    if not items:
        return ""
    return f"and {_counted(items, 'more item')} from {_counted(outlets, 'outlet')}"


def markdown(digest: Digest, *, votes: VoteLinks | None = None) -> str:
    lines = [f"# {_md(title(digest))}", ""]
    lines.append(f"_{_md(byline(digest))}_")
    lines.append("")
    lines += [f"> {_md(note)}" for note in digest.notes]
    if digest.notes:
        lines.append("")
    if digest.reflection:
        lines += [f"## {REVIEW}", ""]
        lines += [f"- {_md(line)}" for line in digest.reflection]
        lines.append("")
    if not digest.trends:
        lines += ["Nothing notable this time.", ""]
    for trend in digest.trends:
        lines += [f"## {trend.rank}. {_md(trend.title)}{developing(trend)}", ""]
        lines += [_md(trend.summary), ""]
        lines += [f"**Why it matters:** {_md(trend.why_it_matters)}", ""]
        for line in charts.lines(trend):
            lines += [f"_{_md(line)}_", ""]
        lines += [f"- {_link(item)}, {stamp(item.published)}" for item in trend.items]
        if unlisted := more(trend, len(trend.items)):
            lines.append(f"- _{unlisted}_")
        if links := votes and votes.of(trend.story):
            lines += ["", f"[{UP}](<{links[0]}>) · [{DOWN}](<{links[1]}>)"]
        lines.append("")
    if digest.topics:
        lines += ["## Topic trends", ""]
        for topic in digest.topics:
            lines += [f"**{_md(topic_line(topic))}**", ""]
            lines += [f"- {_link(item)}, {stamp(item.published)}" for item in topic.items]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _wrap(text: str, indent: str = "", hanging: int = 0) -> list[str]:
    """`text` in lines of _TEXT_WIDTH, each after `indent`; lines after the first are moved
    `hanging` columns further, under the text after a number or a bullet."""
    return textwrap.wrap(
        " ".join(text.split()),
        width=_TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + " " * hanging,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


def text(digest: Digest, *, votes: VoteLinks | None = None) -> str:
    """Plain text, wrapped for a terminal or a mail client's text view; URLs on their own line."""
    heading = title(digest)
    lines = [heading, "=" * len(heading), *_wrap(byline(digest)), ""]
    for note in digest.notes:
        lines += [*_wrap(note, "  | "), ""]
    if digest.reflection:
        lines += [REVIEW, "-" * len(REVIEW)]
        for line in digest.reflection:
            lines += _wrap(f"- {line}", "")
        lines.append("")
    if not digest.trends:
        lines += ["Nothing notable this time.", ""]
    for trend in digest.trends:
        number = f"{trend.rank}. "
        lines += _wrap(f"{number}{trend.title}{developing(trend)}", hanging=len(number))
        lines += [*_wrap(trend.summary, "   "), ""]
        lines += [*_wrap(f"Why it matters: {trend.why_it_matters}", "   "), ""]
        for line in charts.lines(trend):
            lines += [*_wrap(line, "   "), ""]
        lines += _text_items(trend.items)
        if unlisted := more(trend, len(trend.items)):
            lines += _wrap(unlisted, "   ")
        if links := votes and votes.of(trend.story):
            lines += ["", f"   {UP}: {links[0]}", f"   {DOWN}: {links[1]}"]
        lines.append("")
    if digest.topics:
        lines += ["Topic trends", "------------"]
        for topic in digest.topics:
            lines += [*_wrap(topic_line(topic)), *_text_items(topic.items), ""]
    return "\n".join(lines).rstrip() + "\n"


def _text_items(items: tuple[DigestItem, ...]) -> list[str]:
    lines = []
    for item in items:
        lines += _wrap(f"- {item.source}, {stamp(item.published)}: {item.title}", "   ", 2)
        if is_web_url(item.url):
            lines.append(f"     {item.url}")
    return lines


def json_text(digest: Digest) -> str:
    return digest.to_json() + "\n"


def xml_safe(value: object) -> str:
    return _XML_INVALID.sub("", str(value))


@cache
def templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("digests", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["safe_url"] = is_web_url
    environment.filters["stamp"] = stamp
    environment.filters["xml_safe"] = xml_safe
    environment.globals.update(
        title=title,
        byline=byline,
        developing=developing,
        more=more,
        topic_line=topic_line,
        review=REVIEW,
        bars=charts.bars,
        timeline_line=charts.timeline_line,
        coverage_line=charts.coverage_line,
        followers=charts.followers,
        changed_line=charts.changed_line,
    )
    return environment


def html(digest: Digest, *, archive_links: bool = False, votes: VoteLinks | None = None) -> str:
    """HTML for email and the archive; every value from a feed or the model is escaped.

    With `archive_links`, the page links back to its archive index and Atom feed; with
    `votes`, each trend carries its signed vote links.
    """
    return (
        templates()
        .get_template("digest.html.j2")
        .render(digest=digest, archive_links=archive_links, votes=votes, up=UP, down=DOWN)
    )
