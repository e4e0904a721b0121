"""Built-in site extraction, used when there is no Firecrawl account.

Pure functions over HTML (no network): the article on a page, the article links on an
index page (blog index, newsroom, changelog), and the feeds a page advertises.
They never raise on bad input: they return None or [] and the caller records the error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from urllib.parse import urljoin, urlsplit, urlunsplit

import trafilatura
from lxml.html import HtmlElement
from trafilatura.settings import Document
from trafilatura.utils import load_html

__all__ = [
    "Article",
    "FeedLink",
    "discover_feeds",
    "discover_links",
    "extract_article",
]

log = logging.getLogger(__name__)

# Longer input is cut: the article is near the top, and trafilatura needs ~2.5 s per MB of
# dense markup. Twice the largest page of the scrapinghub benchmark (1.5 MB).
MAX_HTML_SIZE = 3_000_000

# Fewer words than this is a stray label ("Home", "Loading…"), not an article body.
# The shortest body of the scrapinghub benchmark has 18 words.
MIN_ARTICLE_WORDS = 10

# The fallback (trafilatura's baseline) ends with a dump of the whole page; below this
# size that dump is navigation, not an article. Same floor as trafilatura's MIN_EXTRACTED_SIZE.
MIN_FALLBACK_CHARS = 250

# htmldate keeps the time of day and the offset only if the output format asks for them.
_DATE_PARAMS = {
    "original_date": True,
    "extensive_search": True,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
}

FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/json",
    }
)


@dataclass(frozen=True)
class Article:
    url: str
    title: str
    text: str  # plain text, one paragraph per line, whitespace collapsed
    published: datetime | None  # tz-aware UTC; a page without an offset is taken as UTC
    author: str | None


@dataclass(frozen=True)
class FeedLink:
    url: str
    title: str | None
    type: str  # the advertised MIME type, lower-case, without parameters


def extract_article(html: str | bytes, url: str) -> Article | None:
    """The article on a page, or None when it has none (or the input is not usable HTML)."""
    content = _bounded(html)
    if not content:
        return None
    try:
        document = trafilatura.bare_extraction(
            content,
            url=url,
            with_metadata=True,
            date_extraction_params=dict(_DATE_PARAMS),
            # Chosen on the scrapinghub benchmark (bench_extraction.py --variants): precision
            # mode scores the best F1 and keeps less boilerplate; comments are not the article.
            favor_precision=True,
            include_comments=False,
            include_tables=True,
        )
        text = _normalise_text(document.text) if isinstance(document, Document) else ""
        if not _is_body(text):
            text = _fallback_text(content)
    except Exception:
        # lxml and trafilatura raise assorted errors on hostile markup (RecursionError on
        # deep trees, ValueError, lxml errors...); none is ours to propagate.
        log.info("article extraction failed for %s", url, exc_info=True)
        return None
    meta = document if isinstance(document, Document) else Document()
    title = _clean(meta.title) or ""
    # The title is its own field; a body opening with it repeats it (+0.002 F1 on the bench).
    if title and text.startswith(title + "\n"):
        text = text[len(title) + 1 :]
    if not _is_body(text):
        return None
    return Article(
        url=url,
        title=title,
        text=text,
        published=_parse_date(meta.date),
        author=_clean(meta.author),
    )


def discover_links(html: str | bytes, base_url: str, *, same_site: bool = True) -> list[str]:
    """Article-looking links of an index page: absolute, without fragment, de-duplicated,
    in page order. Links in navigation, header, footer, sidebar and share blocks are left
    out, and so are tag/category/author/login/feed/asset links and non-http(s) schemes.
    With same_site (default) only links to the base URL's host (ignoring "www.") are kept.
    """
    tree = _parse(html)
    if tree is None:
        return []
    boilerplate: dict[HtmlElement, bool] = {}
    seen: set[str] = set()
    links: list[str] = []
    try:
        base = _document_base(tree, base_url)
        own = _without_fragment(base_url)
        site = _site(base_url)
        for anchor in tree.iter("a"):
            href = anchor.get("href")
            if not href or _REL_SKIP & set((anchor.get("rel") or "").lower().split()):
                continue
            link = _absolute(base, href)
            if link is None or link in seen or link == own:
                continue
            if same_site and _site(link) != site:
                continue
            if not _looks_like_article(link) or _in_boilerplate(anchor, boilerplate):
                continue
            seen.add(link)
            links.append(link)
    except Exception:
        log.info("link discovery failed for %s", base_url, exc_info=True)
        return []
    return links


def discover_feeds(html: str | bytes, base_url: str) -> list[FeedLink]:
    """Feeds the page advertises with <link rel="alternate" type="...rss/atom/json...">,
    absolute and de-duplicated, in page order."""
    tree = _parse(html)
    if tree is None:
        return []
    seen: set[str] = set()
    feeds: list[FeedLink] = []
    try:
        base = _document_base(tree, base_url)
        for element in tree.iter("link"):
            if "alternate" not in (element.get("rel") or "").lower().split():
                continue
            mime = (element.get("type") or "").split(";")[0].strip().lower()
            href = element.get("href")
            if mime not in FEED_TYPES or not href:
                continue
            url = _absolute(base, href)
            # WordPress advertises its REST API as application/json alternates; not a feed.
            if url is None or url in seen or (mime == "application/json" and "/wp-json/" in url):
                continue
            seen.add(url)
            feeds.append(FeedLink(url=url, title=_clean(element.get("title")), type=mime))
    except Exception:
        log.info("feed discovery failed for %s", base_url, exc_info=True)
        return []
    return feeds


# --- article helpers -------------------------------------------------------------------


def _bounded(html: str | bytes) -> str | bytes:
    if not isinstance(html, str | bytes):
        return ""
    return html[:MAX_HTML_SIZE]


def _fallback_text(content: str | bytes) -> str:
    """trafilatura's baseline: JSON-LD articleBody, <article>, <p> texts, then the page."""
    _, text, _ = trafilatura.baseline(content)
    text = _normalise_text(text)
    return text if len(text) >= MIN_FALLBACK_CHARS else ""


def _is_body(text: str) -> bool:
    return len(text.split(maxsplit=MIN_ARTICLE_WORDS)) >= MIN_ARTICLE_WORDS


_SPACES = re.compile(r"\s+")


def _normalise_text(text: str | None) -> str:
    """Collapse whitespace inside lines, drop empty lines; paragraphs stay one per line."""
    if not text:
        return ""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _clean(value: str | None) -> str | None:
    cleaned = _SPACES.sub(" ", value).strip() if value else ""
    return cleaned or None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- link helpers ----------------------------------------------------------------------


def _parse(html: str | bytes) -> HtmlElement | None:
    content = _bounded(html)
    if not content:
        return None
    try:
        return load_html(content)
    except Exception:
        log.info("HTML parsing failed", exc_info=True)
        return None


def _document_base(tree: HtmlElement, base_url: str) -> str:
    """The page's <base href> if usable, else the URL it was fetched from."""
    for base in tree.iter("base"):
        href = base.get("href")
        if href:
            resolved = _absolute(base_url, href)
            return resolved if resolved is not None else base_url
    return base_url


_TRACKING_PARAM = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid)$", re.IGNORECASE)


def _absolute(base: str, href: str) -> str | None:
    """Absolute http(s) URL without fragment and tracking parameters, or None (mailto:,
    javascript:, bad URL...)."""
    try:
        joined = urljoin(base, href.strip())
        parts = urlsplit(joined)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    # Tracking parameters make one article look like several; other parameters stay as written.
    query = "&".join(
        p for p in parts.query.split("&") if p and not _TRACKING_PARAM.match(p.split("=", 1)[0])
    )
    return urlunsplit(parts._replace(query=query, fragment=""))


def _without_fragment(url: str) -> str | None:
    return _absolute(url, url)


def _site(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


_REL_SKIP = frozenset({"tag", "category", "author", "prev", "next", "search", "license"})

_ASSET = re.compile(
    r"\.(7z|avi|css|csv|docx?|gif|gz|ico|jpe?g|js|json|m4a|mov|mp[34]|ogg|pdf|png|pptx?|rar|rss"
    r"|svg|tar|tgz|txt|wav|webm|webp|woff2?|xlsx?|xml|zip)$"
)

# Path segments that mark listings, accounts and utilities rather than articles.
_NON_ARTICLE_SEGMENT = re.compile(
    r"^(tags?|categor(y|ies)|topics?|authors?|archives?|log-?in|log-?out|sign-?(in|up)|register"
    r"|(my-)?account|profile|search|feeds?|rss|atom|subscribe|newsletter|share|cart|checkout"
    r"|wp-admin|wp-login\.php|cdn-cgi|terms(-of-(service|use)|-and-conditions)?"
    r"|(privacy|cookies?)(-policy)?|(about|contact)(-us)?)$"
)

_SECTION_SEGMENT = re.compile(
    r"^(blogs?|news|posts?|articles?|stor(y|ies)|press(-?releases)?|newsroom|releases"
    r"|release-notes|updates|changelog|announcements|insights)$"
)

_PAGINATION = re.compile(r"^(page|p)$")
_YEAR = re.compile(r"^(19|20)\d\d$")
_MONTH_OR_DAY = re.compile(r"^\d{1,2}$")
_DATE_IN_SEGMENT = re.compile(r"(19|20)\d\d-\d\d-\d\d")
_WORD = re.compile(r"[a-z]+")
_SLUGGISH = re.compile(r"[-_\d]")
_SLUG_EXTENSION = re.compile(r"\.(s?html?|php|aspx?)$")
_SHARE_QUERY = re.compile(r"(^|&)(share|replytocom|action|login)=", re.IGNORECASE)


def _looks_like_article(url: str) -> bool:
    """Dated paths (/2024/05/slug, 2024-05-01-slug), hyphenated slugs of three or more
    words, or a hyphenated or numbered entry under a blog/news/posts-like section."""
    parts = urlsplit(url)
    if _SHARE_QUERY.search(parts.query):
        return False
    segments = [s for s in parts.path.lower().split("/") if s]
    if not segments:
        return False
    last = segments[-1]
    if _ASSET.search(last) or any(map(_NON_ARTICLE_SEGMENT.match, segments)):
        return False
    if any(_PAGINATION.match(a) and b.isdigit() for a, b in pairwise(segments)):
        return False
    slug = _SLUG_EXTENSION.sub("", last)
    # A bare date (/2024/ or /2024/05/) is an archive listing, not an article.
    if _YEAR.match(slug) or (_MONTH_OR_DAY.match(slug) and any(map(_YEAR.match, segments))):
        return False
    dated = any(map(_YEAR.match, segments[:-1])) or bool(_DATE_IN_SEGMENT.search(slug))
    wordy = len(_WORD.findall(slug)) >= 3 and ("-" in slug or "_" in slug)
    # Under a section, a one-word entry ("/news/world") is more often a sub-listing than a post.
    sectioned = any(map(_SECTION_SEGMENT.match, segments[:-1])) and bool(_SLUGGISH.search(slug))
    return dated or wordy or sectioned


_BOILERPLATE_TAGS = frozenset({"nav", "footer", "aside", "menu"})
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "menu"})
_BOILERPLATE_NAME = re.compile(
    r"(^|[-_])(nav|navbar|navigation|menu|footer|breadcrumbs?|pagination|pager|share|sharing|"
    r"social|sidebar|widget|cookie|skip-link|tag-?cloud|masthead)([-_]|$)"
)


def _is_boilerplate(element: HtmlElement) -> bool:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _BOILERPLATE_TAGS:
        return True
    # A page header is chrome, but article cards put their title link in a <header> too.
    if tag == "header" and next(element.iterancestors("article", "main"), None) is None:
        return True
    if (element.get("role") or "").lower() in _BOILERPLATE_ROLES:
        return True
    names = f"{element.get('class') or ''} {element.get('id') or ''}".lower().split()
    return any(_BOILERPLATE_NAME.search(name) for name in names)


def _in_boilerplate(anchor: HtmlElement, memo: dict[HtmlElement, bool]) -> bool:
    """Whether an ancestor is navigation/footer/sidebar chrome. Memoised per element so a
    page with many links in deep markup stays linear."""
    path: list[HtmlElement] = []
    found = False
    for node in _ancestors(anchor):
        if node in memo:
            found = memo[node]
            break
        path.append(node)
        if _is_boilerplate(node):
            found = True
            break
    for node in path:
        memo[node] = found
    return found


def _ancestors(element: HtmlElement) -> Iterator[HtmlElement]:
    node = element.getparent()
    while node is not None:
        yield node
        node = node.getparent()
