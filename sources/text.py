"""Feed HTML to safe plain text: tags dropped, entities decoded, whitespace normalised, capped."""

from __future__ import annotations

import bisect
import re
from html import unescape

# Content of these elements is never prose a reader should see.
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "blockquote",
        "pre",
        "section",
        "article",
        "header",
        "footer",
        "figure",
        "figcaption",
        "hr",
    }
)
_END_TAG = {tag: re.compile(rf"</\s*{tag}\s*>", re.IGNORECASE) for tag in _SKIPPED}
# Elements whose content HTML parsers read as plain text up to their closing tag.
_RAW_TEXT = frozenset({"script", "style"})
# Tags that change the text: the others are dropped with nothing in their place.
_MEANINGFUL = _SKIPPED | _BLOCKS | _RAW_TEXT
# One token of markup: a start or end tag (quoted attribute values may hold ">"), or a
# comment, declaration or processing instruction; what lies between tokens is text. Read
# as html.parser reads real feeds, twice as fast; but no pattern crosses a "<" it did not
# start with, so the scan stays linear where html.parser takes minutes ("<a " * 50_000).
_TOKEN = re.compile(
    r"<(?:(?P<end>/)\s*)?(?P<tag>[a-zA-Z][^\t\n\r\f />\x00<]*)(?:[^<>\"']|\"[^\"<]*\"|'[^'<]*')*>"
    r"|<!--.*?(?:--!?>|\Z)"
    r"|<[!?/][^<>]*>",
    re.DOTALL,
)
# Control characters, zero-width characters and bidirectional overrides and isolates (which
# can make a headline display as something other than what it says).
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)
# Runs of spacing other than one plain space (replacing each single space by itself was most
# of clean_text's CPU), looked for only in text that has any.
_SPACES = re.compile(r"[\t\r\f\v\xa0][ \t\r\f\v\xa0]*| [ \t\r\f\v\xa0]+")
_ODD_SPACES = ("  ", "\t", "\r", "\f", "\v", "\xa0")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def clean_text(text: str, max_chars: int | None = None) -> str:
    """Normalise plain text: no control characters, single spaces, at most one blank line."""
    text = _CONTROL.sub("", text)
    if any(space in text for space in _ODD_SPACES):
        text = _SPACES.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def html_to_text(html: str, max_chars: int | None = None) -> str:
    if "<" not in html and "&" not in html:
        return clean_text(html, max_chars)
    parts: list[str] = []
    skipping = 0  # depth inside elements whose content is not prose
    open_skipped: dict[str, int] = {}
    closings: dict[str, list[int]] = {}  # where each skipped element's end tags are
    position = 0
    # A flat scan, token by token: deeply nested markup costs no recursion.
    while token := _TOKEN.search(html, position):
        if not skipping:
            text = html[position : token.start()]
            parts.append(unescape(text) if "&" in text else text)
        position = token.end()
        end, tag = token.group("end", "tag")
        if tag is None:
            continue  # a comment, declaration or processing instruction
        tag = tag.lower()
        if tag not in _MEANINGFUL:
            continue  # most tags (a, span, img, em): only the text around them counts
        ends = bool(end) or token[0].endswith("/>")
        starts = not end
        if tag in _RAW_TEXT:
            skipping = max(0, skipping + starts - ends)
            if starts and not ends:
                # Script and style content is not markup: it runs to the closing tag.
                close = _END_TAG[tag].search(html, position)
                position = close.start() if close else len(html)
        elif tag in _SKIPPED:
            if starts and not ends:
                if tag not in closings:
                    closings[tag] = [end.start() for end in _END_TAG[tag].finditer(html)]
                later = len(closings[tag]) - bisect.bisect_left(closings[tag], position)
                if later <= open_skipped.get(tag, 0):
                    continue  # never closed: what follows it is prose after all
                open_skipped[tag] = open_skipped.get(tag, 0) + 1
                skipping += 1
            elif ends and not starts and open_skipped.get(tag):
                open_skipped[tag] -= 1
                skipping -= 1
        elif tag in _BLOCKS:
            parts.append("\n" * (starts + ends))
    if not skipping:
        parts.append(unescape(html[position:]))
    return clean_text("".join(parts), max_chars)


def one_line(text: str, max_chars: int = 500) -> str:
    """Plain text on one line, as a title (an HTML title goes through html_to_text first)."""
    return clean_text(text.replace("\n", " "), max_chars)
