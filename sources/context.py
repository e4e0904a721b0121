"""What every source fetch of one collection cycle shares: clients, limits, the parser, and
the tools of site sources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.config import CollectConfig, FirecrawlConfig
from sources import netguard
from sources.http import FetchLimits, HttpClients
from sources.netguard import AddressPolicy
from sources.workers import FeedParser

if TYPE_CHECKING:
    from sources.firecrawl import FirecrawlClient


@dataclass(frozen=True)
class SiteTools:
    """What site sources of one collection cycle share."""

    links_http: HttpClients  # for links found on pages: guarded unless private allowed
    link_policy: AddressPolicy | None  # None: any address may be reached
    firecrawl: FirecrawlClient | None


@asynccontextmanager
async def site_tools(
    config: CollectConfig,
    firecrawl: FirecrawlConfig | None,
    policy: AddressPolicy | None = None,
) -> AsyncIterator[SiteTools]:
    """Open the cycle's tools. `policy` replaces the public-address rule (tests only)."""
    guarded = netguard.links_clients(config, policy)
    if config.allow_private_networks and policy is None:
        link_policy = None
    else:
        link_policy = policy or netguard.is_public_address
    client = None
    if firecrawl is not None and firecrawl.enabled:
        # firecrawl-py takes a second to import: only when it is used.
        from sources.firecrawl import FirecrawlClient

        client = FirecrawlClient(firecrawl)
    async with guarded or HttpClients(config) as links_http:
        yield SiteTools(links_http=links_http, link_policy=link_policy, firecrawl=client)


@asynccontextmanager
async def _no_slot(url: str) -> AsyncIterator[None]:
    yield


@dataclass(frozen=True)
class FetchContext:
    """What every source fetch of one collection cycle shares."""

    http: HttpClients
    limits: FetchLimits
    config: CollectConfig
    now: datetime
    parser: FeedParser
    # A slot under the cycle's global and per-host caps for one request to this URL's host.
    # Site sources take one per request they make (the collector does not hold one for them).
    slot: Callable[[str], AbstractAsyncContextManager[None]] = _no_slot
    # Site sources: the scraping service and the client for links found on pages.
    sites: SiteTools | None = None
