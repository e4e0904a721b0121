"""A digest as Slack Block Kit messages, split to stay inside Slack's limits.

Slack rejects a message with more than 50 blocks, a section text over 3,000 characters or
a header over 150 (HTTP 400 `invalid_blocks`). A long digest becomes several messages in
order, and a long trend several sections, so nothing is cut off silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.digest import Digest, DigestItem, Trend
from core.urls import is_web_url
from core.votes import VoteLinks
from digests import charts, render

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
LINKS_PER_TREND = 3
_FALLBACK_CHARS = 300
# A link whose URL alone would crowd a section is shown as text (Slack cannot split a link).
_MAX_LINK_URL = 1000
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")

Block = dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    text: str  # the notification and fallback text
    blocks: tuple[Block, ...]

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": list(self.blocks)}


def escape(text: str) -> str:
    """mrkdwn escaping: Slack asks for exactly these three, and nothing else."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _link(item: DigestItem) -> str:
    where = f"{escape(item.source)}, {render.stamp(item.published)}"
    label = escape(" ".join(item.title.split())).replace("|", "¦")
    if is_web_url(item.url) and len(item.url) <= _MAX_LINK_URL:
        url = escape(item.url).replace("|", "%7C")
        return f"• <{url}|{label}> · {where}"
    return f"• {label} · {where}"


def _hard_split(word: str, limit: int) -> list[str]:
    """Cut an over-long escaped word into pieces, never inside an &amp;-style entity."""
    pieces = []
    while len(word) > limit:
        cut = limit
        if tail := _ENTITY_TAIL.search(word[:cut]):
            cut = tail.start()
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word] if word else pieces


def chunks(lines: list[str], limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Pack lines into texts of at most `limit` characters, splitting long lines at spaces."""
    pieces: list[str] = []
    for line in lines:
        if len(line) <= limit:
            pieces.append(line)
            continue
        current = ""
        for word in line.split(" "):
            for part in _hard_split(word, limit):
                if current and len(current) + 1 + len(part) > limit:
                    pieces.append(current)
                    current = part
                else:
                    current = f"{current} {part}" if current else part
        if current:
            pieces.append(current)
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= limit:
            packed[-1] += "\n" + piece
        else:
            packed.append(piece)
    return packed


def trend_blocks(trend: Trend, *, archive: bool, votes: VoteLinks | None = None) -> list[Block]:
    """`archive`: the profile keeps an archive (a file target) where the rest can be read;
    `votes`: the trend's signed vote links, when the web app has a public URL."""
    heading = f"{trend.rank}. {' '.join(trend.title.split())}{render.developing(trend)}"
    lines = [f"*{escape(heading)}*" if len(heading) < 200 else escape(heading)]
    lines.append(escape(" ".join(trend.summary.split())))
    lines.append(f"*Why it matters:* {escape(' '.join(trend.why_it_matters.split()))}")
    lines += [f"_{escape(line)}_" for line in charts.lines(trend)]
    lines += [_link(item) for item in trend.items[:LINKS_PER_TREND]]
    if unlisted := render.more(trend, LINKS_PER_TREND):
        lines.append(f"_{escape(unlisted)}{' in the archive' if archive else ''}_")
    if links := votes and votes.of(trend.story):
        up, down = (escape(link).replace("|", "%7C") for link in links)
        lines.append(f"<{up}|{render.UP}> · <{down}|{render.DOWN}>")
    return [_section(chunk) for chunk in chunks(lines)]


def topic_blocks(digest: Digest) -> list[Block]:
    lines = ["*Topic trends*"]
    for topic in digest.topics:
        lines.append(f"*{escape(render.topic_line(topic))}*")
        lines += [_link(item) for item in topic.items[:LINKS_PER_TREND]]
    return [_section(chunk) for chunk in chunks(lines)]


def block_id(digest: Digest, number: int, total: int) -> str:
    """`trendfinder:<digest id>:<part>/<parts>`, well inside Slack's 255 characters."""
    return f"trendfinder:{digest.id[:200]}:{number}/{total}"


def messages(
    digest: Digest, *, archive: bool, votes: VoteLinks | None = None
) -> list[SlackMessage]:
    """The digest as one or more messages, in reading order, each valid on its own.
    `archive`: the digest's profile keeps an archive (a file target) to point readers to;
    `votes`: signed vote links for each trend (only when the web app has a public URL)."""
    heading = render.title(digest)
    opening: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(heading, MAX_HEADER_TEXT)}},
        _context(escape(render.byline(digest))),
    ]
    opening += [_context(escape(_clip(note, MAX_SECTION_TEXT))) for note in digest.notes]
    if digest.reflection:
        review = [f"*{render.REVIEW}*", *(f"• {escape(line)}" for line in digest.reflection)]
        opening += [_section(chunk) for chunk in chunks(review)]
    if not digest.trends:
        opening.append(_section("Nothing notable this time."))

    # Continuation messages start with one context line saying which part they are.
    room = MAX_BLOCKS - 1
    bodies: list[list[Block]] = [opening]
    groups = [trend_blocks(trend, archive=archive, votes=votes) for trend in digest.trends]
    if digest.topics:
        groups.append(topic_blocks(digest))
    for blocks in groups:
        current = bodies[-1]
        divider = [{"type": "divider"}] if current else []
        if len(current) + len(divider) + len(blocks) <= room:
            current += divider + blocks
            continue
        # A trend too long for any one message is spread over several; otherwise it
        # starts a fresh message so it reads as one piece.
        for start in range(0, len(blocks), room):
            bodies.append(blocks[start : start + room])
    total = len(bodies)
    titles = "; ".join(f"{t.rank}. {' '.join(t.title.split())}" for t in digest.trends[:5])
    result = []
    for number, body in enumerate(bodies, start=1):
        if number == 1:
            part = f" (part 1 of {total})" if total > 1 else ""
            text = _clip(f"{heading}{part}: {titles}" if titles else heading, _FALLBACK_CHARS)
            blocks = body
        else:
            text = f"{heading} (part {number} of {total})"
            blocks = [_context(escape(f"{text}, continued")), *body]
        # The first block names the digest and the part, so a message in the channel (and a
        # re-sent one) can be traced to `trendfinder digests show ID` by any Slack app.
        blocks[0] = {**blocks[0], "block_id": block_id(digest, number, total)}
        result.append(SlackMessage(text=escape(text), blocks=tuple(blocks)))
    return result
