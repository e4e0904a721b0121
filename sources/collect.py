"""Collect many sources concurrently: one outcome per source, never an exception.

A bad source yields an "error" outcome with a readable reason; the others carry on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from daemon.config import CollectConfig
from sources.feeds import NotAFeed, parse_feed
from sources.model import FetchOutcome


@dataclass(frozen=True)
class FetchRequest:
    """One source to fetch, with what the last successful fetch left for conditional GET."""

    name: str
    kind: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


class BodyTooLarge(Exception):
    pass


def collect(
    requests: Sequence[FetchRequest],
    config: CollectConfig,
    now: datetime,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
) -> list[FetchOutcome]:
    return asyncio.run(collect_async(requests, config, now, on_outcome))


async def collect_async(
    requests: Sequence[FetchRequest],
    config: CollectConfig,
    now: datetime,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
) -> list[FetchOutcome]:
    overall = asyncio.Semaphore(config.concurrency)
    per_host: dict[str, asyncio.Semaphore] = {}
    timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        follow_redirects=True,
        max_redirects=config.max_redirects,
        headers={"User-Agent": config.user_agent},
        http2=True,
    ) as client:

        async def one(request: FetchRequest) -> FetchOutcome:
            host = urlsplit(request.url).hostname or ""
            host_limit = per_host.setdefault(host, asyncio.Semaphore(config.per_host))
            async with overall, host_limit:
                try:
                    outcome = await asyncio.wait_for(
                        fetch_feed(client, request, config, now), timeout=config.timeout * 2
                    )
                except TimeoutError:
                    outcome = _error(request, f"gave up after {config.timeout * 2:.0f} s")
            if on_outcome:
                on_outcome(outcome)
            return outcome

        return list(await asyncio.gather(*(one(request) for request in requests)))


async def fetch_feed(
    client: httpx.AsyncClient, request: FetchRequest, config: CollectConfig, now: datetime
) -> FetchOutcome:
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
    }
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    if request.url.lower().startswith("file://"):
        return _parse(
            request, _read_file(request.url, config.max_bytes), request.url, {}, None, config, now
        )
    try:
        async with client.stream("GET", request.url, headers=headers) as response:
            if response.status_code == 304:
                return FetchOutcome(source=request.name, status="unchanged", http_status=304)
            if response.status_code >= 400:
                return _error(request, f"HTTP {response.status_code}", response.status_code)
            body = await _read_capped(response, config.max_bytes)
    except BodyTooLarge:
        return _error(request, f"response larger than {config.max_bytes:,} bytes")
    except httpx.TooManyRedirects:
        return _error(request, f"more than {config.max_redirects} redirects")
    except httpx.TimeoutException:
        return _error(request, "timed out")
    except httpx.HTTPError as error:
        return _error(request, f"cannot fetch: {error or type(error).__name__}")
    return _parse(
        request, body, str(response.url), response.headers, response.status_code, config, now
    )


def _parse(
    request: FetchRequest,
    body: bytes | FetchOutcome,
    url: str,
    headers: Mapping[str, str],
    status: int | None,
    config: CollectConfig,
    now: datetime,
) -> FetchOutcome:
    if isinstance(body, FetchOutcome):
        return replace(body, source=request.name)
    body_hash = hashlib.sha256(body).hexdigest()
    if body_hash == request.body_hash:
        return FetchOutcome(
            source=request.name, status="unchanged", http_status=status, body_hash=body_hash
        )
    try:
        feed = parse_feed(
            body,
            url,
            headers,
            now,
            max_items=config.max_items_per_source,
            max_text_chars=config.max_text_chars,
        )
    except NotAFeed as error:
        return _error(request, str(error), status)
    return FetchOutcome(
        source=request.name,
        status="ok",
        items=feed.items,
        warnings=(feed.warning,) if feed.warning else (),
        http_status=status,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        body_hash=body_hash,
    )


def _read_file(url: str, limit: int) -> bytes | FetchOutcome:
    path = Path(unquote(urlsplit(url).path))
    try:
        with path.open("rb") as handle:
            body = handle.read(limit + 1)
    except OSError as error:
        return FetchOutcome(
            source="", status="error", error=f"cannot read {path}: {error.strerror}"
        )
    if len(body) > limit:
        return FetchOutcome(
            source="", status="error", error=f"{path} is larger than {limit:,} bytes"
        )
    return body


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(request: FetchRequest, message: str, status: int | None = None) -> FetchOutcome:
    return FetchOutcome(source=request.name, status="error", error=message, http_status=status)
