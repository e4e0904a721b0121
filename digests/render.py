"""Render a stored digest for people: Markdown here; JSON is the digest's own body."""

from __future__ import annotations

import re
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from digests.model import Digest, DigestItem
from sources.urls import is_web_url

# Enough to keep text inert (no links, images, HTML or emphasis), little enough to stay readable.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


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


def markdown(digest: Digest) -> str:
    lines = [f"# {_md(digest.profile)}: what matters, {digest.created_at:%Y-%m-%d}", ""]
    lines.append(
        f"_{digest.stats.items} items from {digest.stats.sources} sources, {when(digest)}; "
        f"analyzer: {_md(digest.analyzer)}_"
    )
    lines.append("")
    lines += [f"> {_md(note)}" for note in digest.notes]
    if digest.notes:
        lines.append("")
    if not digest.trends:
        lines += ["Nothing notable this time.", ""]
    for trend in digest.trends:
        status = " (developing)" if trend.status == "developing" else ""
        lines += [f"## {trend.rank}. {_md(trend.title)}{status}", ""]
        lines += [_md(trend.summary), ""]
        lines += [f"**Why it matters:** {_md(trend.why_it_matters)}", ""]
        lines += [f"- {_link(item)}" for item in trend.items]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def json_text(digest: Digest) -> str:
    return digest.to_json() + "\n"


@cache
def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("digests", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["safe_url"] = is_web_url
    return environment


def html(digest: Digest) -> str:
    """HTML for email and the archive; every value from a feed or the model is escaped."""
    return _templates().get_template("digest.html.j2").render(digest=digest, window=when(digest))
