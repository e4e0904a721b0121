"""Site sources: a watched page (a blog index, a newsroom, a changelog) whose new articles
become items.

Each poll reads the page, finds its article links, skips those already looked at, and
fetches at most `collect.max_site_articles` new ones, concurrently under the cycle's global
and per-host caps. With Firecrawl configured (an API key or a self-hosted `api_url`) pages
are scraped through it to markdown; otherwise the built-in extractor reads the HTML.

The watched page is the operator's choice and is fetched as given. The links on it are
not: they are followed only over http(s) to public addresses (see sources.netguard) unless
`collect.allow_private_networks` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from core.config import CollectConfig
from core.items import FetchOutcome, FetchRequest
from core.retry import retry_delay
from core.urls import canonical_url
from sources import netguard
from sources.context import FetchContext, SiteTools
from sources.extract import FeedLink, discover_feeds, discover_links, extract_article
from sources.feeds import status_outcome, unchanged_outcome
from sources.firecrawl import FirecrawlClient, FirecrawlFailure, markdown_links, markdown_to_text
from sources.http import (
    FetchError,
    FetchLimits,
    HttpClients,
    HttpResponse,
    fetch,
)
from sources.items import RawEntry, build_items
from sources.netguard import BlockedAddress
from sources.policy import max_age, not_before

log = logging.getLogger("trendfinder")

ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "")
# An article body shorter than this many words is a stub page, not an article.
_MIN_WORDS = 10
# Per-link problems listed in the outcome; the rest are counted.
_SHOWN_PROBLEMS = 3


@dataclass(frozen=True)
class FoundArticle:
    """What following one article link gave."""

    link: str  # canonical, as found on the page
    entry: RawEntry | None  # the article, when the link led to one
    settled: bool  # no need to follow it again: an article, or a page that is not one
    problem: str | None = None
    retry_after: datetime | None = None


async def fetch_site(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    tools = context.sites
    if tools is None:
        return _error(request, "site sources are not available in this collection")
    if tools.firecrawl is not None:
        return await _via_firecrawl(context, tools, tools.firecrawl, request)
    return await _built_in(context, tools, request)


# --- built-in: httpx and the article extractor ----------------------------------------------


async def _built_in(context: FetchContext, tools: SiteTools, request: FetchRequest) -> FetchOutcome:
    headers = {"Accept": ACCEPT_HTML}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    try:
        async with context.slot(request.url):
            page = await fetch(context.http, request.url, context.limits, headers=headers)
    except FetchError as error:
        return _error(request, str(error), error.status)
    if not 200 <= page.status < 300:
        return status_outcome(context, request, page, "page")
    body_hash = hashlib.sha256(page.body).hexdigest()
    if body_hash == request.body_hash:
        return unchanged_outcome(context, request, page, body_hash)
    links = discover_links(page.body, page.url)

    async def follow(link: str) -> FoundArticle:
        return await _fetch_article(context, tools, link)

    outcome, complete = await _harvest(
        context, request, links, follow, discover_feeds(page.body, page.url)
    )
    if outcome.status == "error":
        return replace(outcome, http_status=page.status, permanent_url=page.permanent_url)
    return replace(
        outcome,
        http_status=page.status,
        permanent_url=page.permanent_url,
        # Validators are kept only when every new link was dealt with: otherwise a 304 next
        # time would leave the rest unread.
        etag=page.headers.get("etag") if complete else None,
        last_modified=page.headers.get("last-modified") if complete else None,
        body_hash=body_hash if complete else None,
        retry_after=_later(outcome.retry_after, not_before(context.now, max_age(page.headers))),
    )


async def _fetch_article(context: FetchContext, tools: SiteTools, link: str) -> FoundArticle:
    try:
        async with context.slot(link):
            response = await fetch(
                tools.links_http, link, context.limits, headers={"Accept": ACCEPT_HTML}
            )
    except BlockedAddress as error:
        return FoundArticle(link, None, settled=False, problem=f"{link}: {error}")
    except FetchError as error:
        return FoundArticle(link, None, settled=False, problem=f"{link}: {error}")
    status = response.status
    if status in (429, 503):
        wait = not_before(
            context.now, retry_delay(response.headers.get("retry-after"), context.now)
        )
        return FoundArticle(
            link, None, settled=False, problem=f"{link}: HTTP {status}", retry_after=wait
        )
    if 400 <= status < 500:
        return FoundArticle(link, None, settled=True, problem=f"{link}: HTTP {status}")
    if not 200 <= status < 300:
        return FoundArticle(link, None, settled=False, problem=f"{link}: HTTP {status}")
    if not _is_html(response):
        return FoundArticle(link, None, settled=True)
    article = await asyncio.to_thread(extract_article, response.body, response.url)
    if article is None:
        return FoundArticle(link, None, settled=True)
    entry = RawEntry(
        title=article.title,
        link=response.url,
        guid="",
        html=html.escape(article.text, quote=False),
        published=article.published,
    )
    return FoundArticle(link, entry, settled=True)


def advertised_feeds(url: str, config: CollectConfig) -> list[FeedLink]:
    """The feeds a web page advertises (<link rel="alternate">); [] when it cannot be read."""

    async def read() -> list[FeedLink]:
        async with HttpClients(config) as clients:
            try:
                page = await fetch(
                    clients, url, FetchLimits.from_config(config), headers={"Accept": ACCEPT_HTML}
                )
            except FetchError:
                return []
        return discover_feeds(page.body, page.url) if 200 <= page.status < 300 else []

    return asyncio.run(read())


def _is_html(response: HttpResponse) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in _HTML_TYPES


# --- Firecrawl ---------------------------------------------------------------------------


async def _via_firecrawl(
    context: FetchContext, tools: SiteTools, firecrawl: FirecrawlClient, request: FetchRequest
) -> FetchOutcome:
    try:
        async with context.slot(firecrawl.api_url):
            page = await firecrawl.scrape(request.url, with_links=True)
    except FirecrawlFailure as error:
        return replace(_error(request, str(error)), retry_after=error.retry_after)
    if page.status is not None and page.status >= 400:
        return _error(request, f"HTTP {page.status} (as Firecrawl reports it)", page.status)
    body_hash = hashlib.sha256("\n".join([page.markdown, *page.links]).encode()).hexdigest()
    if body_hash == request.body_hash:
        return FetchOutcome(
            source=request.name, status="unchanged", http_status=page.status, body_hash=body_hash
        )
    # Links in the main content (the markdown) come first, then the rest of the page's.
    anchors = "".join(
        f'<a href="{html.escape(link)}">link</a>'
        for link in dict.fromkeys([*markdown_links(page.markdown), *page.links])
    )
    links = discover_links(f"<html><body>{anchors}</body></html>", page.url)

    async def follow(link: str) -> FoundArticle:
        return await _scrape_article(context, tools, firecrawl, link)

    outcome, complete = await _harvest(context, request, links, follow, ())
    if outcome.status == "error":
        return replace(outcome, http_status=page.status)
    return replace(outcome, http_status=page.status, body_hash=body_hash if complete else None)


async def _scrape_article(
    context: FetchContext, tools: SiteTools, firecrawl: FirecrawlClient, link: str
) -> FoundArticle:
    if tools.link_policy is not None:
        try:
            await netguard.check_url(link, tools.link_policy, context.limits.connect_timeout)
        except BlockedAddress as error:
            return FoundArticle(link, None, settled=False, problem=f"{link}: {error}")
    try:
        async with context.slot(firecrawl.api_url):
            page = await firecrawl.scrape(link)
    except FirecrawlFailure as error:
        return FoundArticle(
            link, None, settled=False, problem=f"{link}: {error}", retry_after=error.retry_after
        )
    if page.status is not None and page.status >= 400:
        settled = page.status < 500 and page.status != 429
        return FoundArticle(link, None, settled=settled, problem=f"{link}: HTTP {page.status}")
    text = markdown_to_text(page.markdown)
    if len(text.split(maxsplit=_MIN_WORDS)) < _MIN_WORDS:
        return FoundArticle(link, None, settled=True)
    title = page.title or ""
    first_line = text.split("\n", 1)[0]
    if title and first_line == title:
        text = text[len(first_line) :].lstrip("\n")
    entry = RawEntry(
        title=title,
        link=page.url,
        guid="",
        html=html.escape(text, quote=False),
        published=page.published,
    )
    return FoundArticle(link, entry, settled=True)


# --- both ----------------------------------------------------------------------------------


async def _harvest(
    context: FetchContext,
    request: FetchRequest,
    links: Sequence[str],
    follow: Callable[[str], Awaitable[FoundArticle]],
    feeds: Sequence[FeedLink],
) -> tuple[FetchOutcome, bool]:
    """Follow the page's new article links; the outcome, and whether every new link was
    dealt with (only then may the page be skipped while it stays unchanged)."""
    candidates = list(dict.fromkeys(canonical_url(link) for link in links))
    known = [link for link in candidates if link in request.seen_links]
    new = [link for link in candidates if link not in request.seen_links]
    cap = context.config.max_site_articles
    results = await _follow_all(new[:cap], follow)
    found = [result for result in results if result.entry is not None]
    items = build_items(
        [result.entry for result in found if result.entry is not None],
        source=request.name,
        feed_url=request.url,
        home=request.url,
        now=context.now,
        max_text_chars=context.config.max_text_chars,
    )
    settled = [result.link for result in results if result.settled]
    seen = list(dict.fromkeys([*known, *settled, *(item.url for item in items)]))
    problems = [result.problem for result in results if result.problem]
    unsettled = sum(not result.settled for result in results)
    left = len(new) - len(results)
    wait = max((r.retry_after for r in results if r.retry_after), default=None)
    if results and not settled:
        failed = FetchOutcome(
            source=request.name,
            status="error",
            error=f"none of the {len(results)} new article links could be read: {problems[0]}",
            retry_after=wait,
            seen_links=tuple(known),
        )
        return failed, False
    warnings = _warnings(problems, left, feeds, bool(candidates))
    outcome = FetchOutcome(
        source=request.name,
        status="ok",
        items=items,
        warnings=warnings,
        retry_after=wait,
        seen_links=tuple(seen),
    )
    return outcome, not unsettled and not left


async def _follow_all(
    links: Sequence[str], follow: Callable[[str], Awaitable[FoundArticle]]
) -> list[FoundArticle]:
    async def guarded(link: str) -> FoundArticle:
        try:
            return await follow(link)
        except Exception as error:
            # A bug met on one article must not lose the source's other articles.
            log.exception("unexpected error while reading article %s", link)
            problem = f"{link}: internal error: {type(error).__name__}: {error}"
            return FoundArticle(link, None, settled=False, problem=problem)

    return list(await asyncio.gather(*(guarded(link) for link in links)))


def _warnings(
    problems: Sequence[str], left: int, feeds: Sequence[FeedLink], any_links: bool
) -> tuple[str, ...]:
    warnings = list(problems[:_SHOWN_PROBLEMS])
    if len(problems) > _SHOWN_PROBLEMS:
        warnings.append(f"and {len(problems) - _SHOWN_PROBLEMS} more article links failed")
    if left:
        warnings.append(f"{left} more new article links are left for the next poll")
    if not any_links:
        warnings.append("no article links found on the page")
    if feeds:
        warnings.append(
            f"the page advertises a feed: {feeds[0].url} (a feed source is cheaper and more "
            "reliable)"
        )
    return tuple(warnings)


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    return max((moment for moment in (first, second) if moment), default=None)


def _error(request: FetchRequest, message: str, status: int | None = None) -> FetchOutcome:
    return FetchOutcome(source=request.name, status="error", error=message, http_status=status)
