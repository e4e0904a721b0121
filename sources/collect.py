"""Collect many sources concurrently: one outcome per source, never an exception.

A bad source yields an "error" outcome with a readable reason; the others carry on.
Concurrency is capped globally and per host, so a thousand sources finish quickly
without hammering any one server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlsplit

from core.config import CollectConfig, FirecrawlConfig
from core.items import FetchOutcome, FetchRequest
from sources.bluesky import fetch_bluesky
from sources.context import FetchContext, site_tools
from sources.feeds import fetch_feed
from sources.hackernews import fetch_hackernews
from sources.http import FetchLimits, HttpClients
from sources.mastodon import fetch_mastodon
from sources.reddit import fetch_reddit
from sources.workers import FeedParser
from sources.x import fetch_x

log = logging.getLogger("trendfinder")

SourceFetch = Callable[[FetchContext, FetchRequest], Awaitable[FetchOutcome]]


async def fetch_site(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    # Imported when a cycle has a site source: its extractor and Firecrawl's client take
    # longer to import than a cycle of feeds takes to collect.
    from sources.sites import fetch_site

    return await fetch_site(context, request)


# One fetch per source kind; each returns a FetchOutcome for any input (site sources plug in
# here with the same shape).
FETCHERS: dict[str, SourceFetch] = {
    "feed": fetch_feed,
    "site": fetch_site,
    "x": fetch_x,
    "hackernews": fetch_hackernews,
    "reddit": fetch_reddit,
    "mastodon": fetch_mastodon,
    "bluesky": fetch_bluesky,
}
# These take a slot per request they make (a site reads a page, then its articles); holding
# one for the whole fetch while waiting for more would deadlock at the caps.
SLOTTED_BY_FETCHER = frozenset({"site"})


def collect(
    requests: Sequence[FetchRequest],
    config: CollectConfig,
    now: datetime,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
    firecrawl: FirecrawlConfig | None = None,
) -> list[FetchOutcome]:
    return asyncio.run(collect_async(requests, config, now, on_outcome, firecrawl))


async def collect_async(
    requests: Sequence[FetchRequest],
    config: CollectConfig,
    now: datetime,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
    firecrawl: FirecrawlConfig | None = None,
) -> list[FetchOutcome]:
    """Fetch every request; `on_outcome` sees each outcome as soon as it is known, and then
    the returned outcomes leave their items out (it has them), so that a large cycle does
    not hold every item until its end.

    Site sources scrape through Firecrawl when `firecrawl` is enabled."""
    overall = asyncio.Semaphore(config.concurrency)
    per_host: defaultdict[str, asyncio.Semaphore] = defaultdict(
        lambda: asyncio.Semaphore(config.per_host)
    )

    @asynccontextmanager
    async def slot(url: str) -> AsyncIterator[None]:
        # The host slot comes first: waiting on a busy host must not hold a global slot.
        async with per_host[host_key(url)], overall:
            yield

    parser = FeedParser(config, len(requests))
    async with (
        HttpClients(config) as clients,
        site_tools(config, firecrawl) as sites,
    ):
        context = FetchContext(
            clients, FetchLimits.from_config(config), config, now, parser, slot=slot, sites=sites
        )

        async def one(request: FetchRequest) -> FetchOutcome:
            if request.kind in SLOTTED_BY_FETCHER:
                outcome = await fetch_source(context, request)
            else:
                async with slot(request.url):
                    outcome = await fetch_source(context, request)
            if on_outcome:
                on_outcome(outcome)
                return replace(outcome, items=())
            return outcome

        try:
            parser.start()
            return list(await asyncio.gather(*(one(request) for request in requests)))
        finally:
            await parser.aclose()


async def fetch_source(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    fetcher = FETCHERS.get(request.kind)
    if fetcher is None:
        return _error(request, f"{request.kind!r} sources are not supported by this version")
    try:
        return await fetcher(context, request)
    except Exception as error:
        # A bug met on one source's content must not stop the others; the log has the trace.
        log.exception("unexpected error while reading source %s", request.name)
        return _error(request, f"internal error while reading it: {type(error).__name__}: {error}")


def host_key(url: str) -> str:
    """The host whose `collect.per_host` limit a fetch of `url` counts against (in this
    process, and across workers through the store)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _error(request: FetchRequest, message: str) -> FetchOutcome:
    return FetchOutcome(source=request.name, status="error", error=message)
