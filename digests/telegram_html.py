"""A digest as Telegram messages in its HTML parse mode, split within 4,096 characters.

Telegram's HTML subset wants `<`, `>` and `&` escaped as entities, allows only a few tags
(b, i, u, s, a, code, pre, blockquote) and rejects a message over 4,096 characters
(HTTP 400 "message is too long"). Feed and model text is escaped, so it cannot open a
tag or a link, and "@" is followed by a zero-width space, so "@username" mentions nobody.
"""

from __future__ import annotations

import html

from core.digest import Digest, DigestItem, Trend
from core.urls import is_web_url
from digests import render
from digests.blockkit import chunks

MAX_MESSAGE = 4096
# Telegram counts UTF-16 code units of the parsed text; the HTML is longer than that text,
# so this leaves room for characters outside the BMP (two units each).
_PACK_LIMIT = 3800
_MAX_TITLE = 300
_MAX_LINK_URL = 1000
LINKS_PER_TREND = 3


def escape(text: str) -> str:
    """Untrusted text as inert Telegram HTML on one line."""
    return html.escape(" ".join(text.split()), quote=False).replace("@", "@\u200b")


def _link(item: DigestItem) -> str:
    label = escape(item.title[:_MAX_TITLE])
    where = f"{escape(item.source)}, {render.stamp(item.published)}"
    if is_web_url(item.url) and len(item.url) <= _MAX_LINK_URL:
        return f'• <a href="{html.escape(item.url, quote=True)}">{label}</a> · {where}'
    return f"• {label} · {where}"


def trend_lines(trend: Trend) -> list[str]:
    heading = escape(f"{trend.rank}. {trend.title[:_MAX_TITLE]}{render.developing(trend)}")
    lines = [f"<b>{heading}</b>", escape(trend.summary)]
    lines.append(f"<i>Why it matters:</i> {escape(trend.why_it_matters)}")
    lines += [_link(item) for item in trend.items[:LINKS_PER_TREND]]
    if unlisted := render.more(trend, LINKS_PER_TREND):
        lines.append(f"<i>{escape(unlisted)}</i>")
    return lines


def messages(digest: Digest) -> list[str]:
    """The digest as one or more HTML messages in reading order, each valid on its own."""
    opening = [f"<b>{escape(render.title(digest))}</b>", f"<i>{escape(render.byline(digest))}</i>"]
    opening += [f"<blockquote>{escape(note)}</blockquote>" for note in digest.notes]
    if not digest.trends:
        opening.append("Nothing notable this time.")
    lines = list(opening)
    for trend in digest.trends:
        lines += ["", *trend_lines(trend)]  # a blank line between trends
    # Filled line by line: Telegram allows a group about 20 messages a minute, so fewer
    # and fuller messages arrive sooner than one message per trend.
    bodies = [body.strip("\n") for body in chunks(lines, _PACK_LIMIT)]
    total = len(bodies)
    if total == 1:
        return bodies
    return [f"{body}\n\n<i>part {n} of {total}</i>" for n, body in enumerate(bodies, start=1)]
