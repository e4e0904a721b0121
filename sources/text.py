"""Feed HTML to safe plain text: tags dropped, entities decoded, whitespace normalised, capped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

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
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class _TextCollector(HTMLParser):
    # A flat event parser: deeply nested markup costs no recursion.
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def clean_text(text: str, max_chars: int | None = None) -> str:
    """Normalise plain text: no control characters, single spaces, at most one blank line."""
    text = _SPACES.sub(" ", _CONTROL.sub("", text))
    lines = [line.strip() for line in text.split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def html_to_text(html: str, max_chars: int | None = None) -> str:
    if "<" not in html and "&" not in html:
        return clean_text(html, max_chars)
    collector = _TextCollector()
    try:
        collector.feed(html)
        collector.close()
    except (AssertionError, ValueError):
        # HTMLParser gives up on some malformed declarations; keep what it read so far.
        pass
    return clean_text("".join(collector.parts), max_chars)


def one_line(text: str, max_chars: int = 500) -> str:
    """A title: plain text on one line."""
    text = html_to_text(text)
    # Most titles are one short line already, and clean_text would return them unchanged.
    if "\n" in text or len(text) > max_chars:
        text = clean_text(text.replace("\n", " "), max_chars)
    return text
