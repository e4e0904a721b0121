"""A digest as Discord webhook messages: one embed per trend, split within Discord's limits.

Discord rejects (HTTP 400, code 50035 "Invalid Form Body") a message with more than 10
embeds, more than 6,000 characters of embed text in all, content over 2,000, an embed
title over 256, a description over 4,096, more than 25 fields, a field name over 256 or a
value over 1,024. A long digest becomes several messages, and a trend too long for one
embed continues in the next. Feed and model text is inert: Markdown is escaped, so no
masked link or formatting can be smuggled in, and "@" is followed by a zero-width space,
so "@everyone" reads as text; `allowed_mentions: {parse: []}` stops pings regardless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.digest import Digest, DigestItem, Trend
from core.urls import is_web_url
from digests import render

MAX_EMBEDS = 10
MAX_MESSAGE_EMBED_CHARS = 6000
# Room kept in each message for the footer that names the digest and the part.
_FOOTER_ROOM = 256
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_CONTENT = 2000
LINKS_PER_TREND = 3
NO_MENTIONS: dict[str, Any] = {"parse": []}
COLOUR_NEW = 0x2B6CB0
COLOUR_DEVELOPING = 0xDD6B20
# Markdown Discord honours in embeds and content, plus "<" that opens <@id> and <#id>.
_SPECIAL = re.compile(r"([\\*_~`|>\[\]()#<:-])")
_MAX_LINK_URL = 512

Embed = dict[str, Any]


def escape(text: str) -> str:
    """Untrusted text as inert Discord Markdown on one line."""
    flat = _SPECIAL.sub(r"\\\1", " ".join(text.split()))
    return flat.replace("@", "@\u200b")


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # Never leave a dangling backslash that would escape the ellipsis.
    cut = cut.rstrip("\\") if (len(cut) - len(cut.rstrip("\\"))) % 2 else cut
    return cut.rstrip() + "…"


@dataclass(frozen=True)
class DiscordMessage:
    content: str
    embeds: tuple[Embed, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "embeds": list(self.embeds),
            "allowed_mentions": NO_MENTIONS,
        }


def embed_chars(embed: Embed) -> int:
    """Characters Discord counts against the 6,000 per message."""
    count = len(embed.get("title", "")) + len(embed.get("description", ""))
    count += len(embed.get("footer", {}).get("text", ""))
    count += len(embed.get("author", {}).get("name", ""))
    for item in embed.get("fields", []):
        count += len(item["name"]) + len(item["value"])
    return count


def _link(item: DigestItem) -> str:
    label = escape(item.title)[:200]
    where = f"{escape(item.source)}, {render.stamp(item.published)}"
    if is_web_url(item.url) and len(item.url) <= _MAX_LINK_URL:
        url = item.url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        return f"• [{label}](<{url}>) · {where}"
    return f"• {label} · {where}"


def _pieces(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most `limit`, at spaces when there are any."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        while text[:cut].endswith("\\") and cut > 1:
            cut -= 1  # keep an escape with the character it escapes
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*pieces, text] if text else pieces


def trend_embeds(trend: Trend) -> list[Embed]:
    """A trend as one embed, or several when its text exceeds one embed's description."""
    heading = clip(escape(f"{trend.rank}. {trend.title}{render.developing(trend)}"), MAX_TITLE)
    lines = [escape(trend.summary), f"**Why it matters:** {escape(trend.why_it_matters)}"]
    lines += [_link(item) for item in trend.items[:LINKS_PER_TREND]]
    if unlisted := render.more(trend, LINKS_PER_TREND):
        lines.append(f"_{escape(unlisted)}_")
    # Per embed, well under 4,096 so that a few trends still fit the 6,000 of one message.
    descriptions: list[str] = []
    for line in lines:
        for piece in _pieces(line, 1500):
            if descriptions and len(descriptions[-1]) + 1 + len(piece) <= 1500:
                descriptions[-1] += "\n" + piece
            else:
                descriptions.append(piece)
    colour = COLOUR_DEVELOPING if trend.status == "developing" else COLOUR_NEW
    embeds = []
    for number, description in enumerate(descriptions):
        title = heading if number == 0 else clip(f"{heading} (continued)", MAX_TITLE)
        embeds.append({"title": title, "description": description, "color": colour})
    return embeds


def messages(digest: Digest) -> list[DiscordMessage]:
    """The digest as one or more messages, in reading order, each valid on its own."""
    heading = render.title(digest)
    intro = [escape(render.byline(digest)), *(escape(note) for note in digest.notes)]
    if not digest.trends:
        intro.append("Nothing notable this time.")
    bodies: list[list[Embed]] = [[]]
    for trend in digest.trends:
        for embed in trend_embeds(trend):
            current = bodies[-1]
            used = sum(embed_chars(e) for e in current)
            room = MAX_MESSAGE_EMBED_CHARS - _FOOTER_ROOM
            if current and (len(current) >= MAX_EMBEDS or used + embed_chars(embed) > room):
                bodies.append([])
            bodies[-1].append(embed)
    total = len(bodies)
    result = []
    for number, embeds in enumerate(bodies, start=1):
        part = f" (part {number} of {total})" if total > 1 else ""
        first = f"**{escape(heading)}**{part}"
        content = "\n".join([first, *intro]) if number == 1 else first
        footer = {"text": f"trendfinder {digest.id[:200]} · {number}/{total}"}
        if embeds:
            embeds[-1] = {**embeds[-1], "footer": footer}
        result.append(DiscordMessage(content=clip(content, MAX_CONTENT), embeds=tuple(embeds)))
    return result
