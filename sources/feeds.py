"""Fetch one feed source: conditional GET, the server's politeness signals, then parsing.

A 304, or a body identical to the last one, costs no parsing. 429/503 honour Retry-After,
410 disables the source, and permanent redirects move it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from core.items import FetchOutcome, FetchRequest
from core.retry import retry_delay
from sources.context import FetchContext
from sources.http import FetchError, HttpResponse, fetch
from sources.policy import max_age, not_before
from sources.workers import ParserDied

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


async def fetch_feed(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    headers = {"Accept": ACCEPT}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    try:
        response = await fetch(context.http, request.url, context.limits, headers=headers)
    except FetchError as error:
        return FetchOutcome(
            source=request.name, status="error", error=str(error), http_status=error.status
        )
    if 200 <= response.status < 300:
        return await _read(context, request, response)
    return status_outcome(context, request, response)


def status_outcome(
    context: FetchContext, request: FetchRequest, response: HttpResponse, what: str = "feed"
) -> FetchOutcome:
    """What a non-2xx answer means for the source (`what` names it in the message): 304 is
    unchanged, 410 disables it, 429/503 set the earliest next attempt, the rest are errors."""
    now = context.now
    base = FetchOutcome(
        source=request.name,
        status="error",
        http_status=response.status,
        permanent_url=response.permanent_url,
    )
    if response.status == 304:
        return FetchOutcome(
            source=request.name,
            status="unchanged",
            http_status=304,
            permanent_url=response.permanent_url,
            retry_after=not_before(now, max_age(response.headers)),
        )
    status = f"HTTP {response.status} {response.reason}".strip()
    if response.status == 410:
        reason = f"{status}: the server says this {what} is gone for good"
        return replace(base, error=reason, disable_reason=reason)
    if response.status in (429, 503):
        delay = retry_delay(response.headers.get("retry-after"), now)
        wait = not_before(now, delay)
        asked = f"; the server asked to wait until {wait:%Y-%m-%d %H:%M} UTC" if wait else ""
        return replace(base, error=f"{status}{asked}", retry_after=wait)
    if 300 <= response.status < 400:
        return replace(base, error=f"{status} without a Location to follow")
    return replace(base, error=status)


def unchanged_outcome(
    context: FetchContext, request: FetchRequest, response: HttpResponse, body_hash: str
) -> FetchOutcome:
    """The server ignored conditional GET, but the body is the last one: nothing to parse."""
    return FetchOutcome(
        source=request.name,
        status="unchanged",
        http_status=response.status,
        body_hash=body_hash,
        permanent_url=response.permanent_url,
        retry_after=not_before(context.now, max_age(response.headers)),
    )


async def _read(
    context: FetchContext, request: FetchRequest, response: HttpResponse
) -> FetchOutcome:
    body_hash = hashlib.sha256(response.body).hexdigest()
    if body_hash == request.body_hash:
        return unchanged_outcome(context, request, response, body_hash)
    # Here, not at the top: a cycle of unchanged feeds never loads the parser (sources.workers).
    from sources.parse import NotAFeed

    try:
        feed = await context.parser.parse(
            response.body, response.url, response.headers, context.now, request.name
        )
    except (NotAFeed, ParserDied) as error:
        return FetchOutcome(
            source=request.name,
            status="error",
            error=str(error),
            http_status=response.status,
            permanent_url=response.permanent_url,
        )
    return FetchOutcome(
        source=request.name,
        status="ok",
        items=feed.items,
        warnings=(feed.warning,) if feed.warning else (),
        http_status=response.status,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        body_hash=body_hash,
        permanent_url=response.permanent_url,
        retry_after=not_before(context.now, max_age(response.headers), feed.ttl),
    )
