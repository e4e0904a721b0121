"""FirecrawlServer: the v2 scrape endpoint that firecrawl-py 4.x's ``Firecrawl.scrape`` calls
(POST {api_url}/v2/scrape), serving registered pages and scripted failures."""

from __future__ import annotations

import json
import re
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer, take_scripted

_FORMATS = {
    "markdown",
    "html",
    "rawHtml",
    "links",
    "images",
    "screenshot",
    "summary",
    "changeTracking",
    "json",
    "attributes",
    "branding",
    "audio",
    "video",
    "query",
    "highlights",
    "question",
}


@dataclass
class Page:
    """A page the fake Firecrawl "scrapes"."""

    markdown: str
    links: list[str] = field(default_factory=list)
    title: str | None = None
    html: str | None = None
    status_code: int = 200
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    delay: float
    remaining: int


class _FirecrawlHandler(LoopbackHandler):
    owner: FirecrawlServer

    def do_POST(self) -> None:
        raw = self.read_body()
        rec = self.record(raw)
        server = self.owner
        if rec.path != "/v2/scrape":
            self.send_json(404, {"success": False, "error": f"Cannot POST {rec.path}"})
            return
        expected = f"Bearer {server.api_key}"
        if server.api_key is not None and rec.headers.get("authorization") != expected:
            self.send_json(401, {"success": False, "error": "Unauthorized: Invalid token"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_json(
                400,
                {
                    "success": False,
                    "error": "Bad Request",
                    "details": [{"message": "Invalid JSON body"}],
                },
            )
            return
        problem = _validate(body)
        if problem:
            self.send_json(
                400,
                {
                    "success": False,
                    "error": "Bad Request",
                    "details": [{"code": "invalid_request", "message": problem}],
                },
            )
            return
        failure = server._next_failure()
        if failure is not None and not failure.status:
            # A hang; the service still enforces the request's own `timeout` (ms).
            budget = body.get("timeout")
            if isinstance(budget, int) and budget / 1000 < failure.delay:
                if not self.sleep(budget / 1000):
                    self.send_json(
                        408,
                        {"success": False, "error": "Scrape timed out", "code": "SCRAPE_TIMEOUT"},
                    )
                return
            self.sleep(failure.delay)
            self.close_connection = True
            return
        if self.sleep(failure.delay if failure else server.latency):
            self.close_connection = True
            return
        if failure is not None:
            self.send_json(failure.status, failure.body, failure.headers)
            return
        server._record_scrape(body["url"])
        self.send_json(200, server._document(body))


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Expected object"
    url = body.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://", url):
        return "Invalid URL"
    formats = body.get("formats", ["markdown"])
    if not isinstance(formats, list):
        return "formats must be an array"
    for fmt in formats:
        name = fmt.get("type") if isinstance(fmt, dict) else fmt
        if name not in _FORMATS:
            return f"Invalid enum value. Expected one of {sorted(_FORMATS)}, received '{name}'"
    return None


class FirecrawlServer(LoopbackHTTPServer):
    """Use ``Firecrawl(api_key="fc-test", api_url=server.url)``.

    Registered pages are answered in the v2 shape ``{"success": true, "data": {...}}``
    with only the requested formats (markdown, html, rawHtml, links; summary is a stub).
    An unregistered URL scrapes "successfully" as an empty 404 page, as the real service
    reports target-site errors in ``metadata.statusCode``.
    """

    handler_class = _FirecrawlHandler

    def __init__(self, *, api_key: str | None = None, latency: float = 0.0) -> None:
        super().__init__()
        # When set, any other bearer token gets 401.
        self.api_key = api_key
        self.latency = latency
        self._pages: dict[str, Page] = {}
        self._failures: deque[_Failure] = deque()
        self._scraped: list[str] = []

    @property
    def base_url(self) -> str:
        """The SDK's api_url (it appends /v2/scrape itself)."""
        return self.url

    @property
    def scraped_urls(self) -> list[str]:
        """URLs of successful scrapes, in order."""
        with self._lock:
            return list(self._scraped)

    def scrape_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of every POST /v2/scrape (url, formats, onlyMainContent, origin...)."""
        return [r.json() for r in self.requests if r.path == "/v2/scrape" and r.body]

    def add_page(
        self,
        url: str,
        markdown: str,
        links: list[str] | None = None,
        *,
        title: str | None = None,
        html: str | None = None,
        status_code: int = 200,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Register a page. URLs match exactly, ignoring a trailing slash."""
        with self._lock:
            self._pages[url.rstrip("/")] = Page(
                markdown, list(links or []), title, html, status_code, dict(metadata or {})
            )

    def fail(
        self,
        status: int,
        error: str | None = None,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        details: Any = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Queue a JSON error answer {"success": false, "error", ["code"], ["details"]}
        for the next `times` valid scrape requests. retry_after sets `Retry-After`."""
        defaults = {
            401: "Unauthorized: Invalid token",
            402: "Insufficient credits to perform this request.",
            408: "Scrape timed out",
            429: "Rate limit exceeded. Consumed (req/min): 11, Remaining (req/min): 0. "
            "Upgrade your plan at https://firecrawl.dev/pricing for increased rate "
            "limits or please retry after 1s.",
            500: "An unexpected error occurred. Please contact help@firecrawl.com for help.",
            502: "Bad Gateway",
        }
        body: dict[str, Any] = {"success": False, "error": error or defaults.get(status, "Error")}
        if code is not None:
            body["code"] = code
        if details is not None:
            body["details"] = details
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self._lock:
            self._failures.append(_Failure(status, body, headers, delay, times))

    def fail_rate_limit(self, retry_after: float = 1, *, times: int = 1) -> None:
        self.fail(429, retry_after=retry_after, times=times)

    def fail_timeout(self, *, times: int = 1) -> None:
        """408 {"code": "SCRAPE_TIMEOUT"}: the service's own scrape timeout (SDK raises
        RequestTimeoutError; no auto-resume since details.state is absent)."""
        self.fail(408, code="SCRAPE_TIMEOUT", times=times)

    def hang(self, seconds: float, *, times: int = 1) -> None:
        """Say nothing for `seconds`, then close the connection: a client-side read
        timeout (the SDK raises requests' ReadTimeout, after retrying: max_retries
        attempts in total). If the scrape request carries ``timeout`` (ms) shorter than
        `seconds`, answer 408 SCRAPE_TIMEOUT when it expires, as the service does."""
        with self._lock:
            self._failures.append(_Failure(0, {}, {}, seconds, times))

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return take_scripted(self._failures)

    def _record_scrape(self, url: str) -> None:
        with self._lock:
            self._scraped.append(url)

    def _document(self, body: dict[str, Any]) -> dict[str, Any]:
        url: str = body["url"]
        with self._lock:
            page = self._pages.get(url.rstrip("/"))
        if page is None:
            page = Page(markdown="", status_code=404, metadata={"error": "Not Found"})
        formats = {
            f.get("type") if isinstance(f, dict) else f for f in body.get("formats", ["markdown"])
        }
        html = page.html or (
            f"<html><head><title>{page.title or ''}</title></head><body></body></html>"
        )
        data: dict[str, Any] = {}
        if "markdown" in formats:
            data["markdown"] = page.markdown
        if "html" in formats:
            data["html"] = html
        if "rawHtml" in formats:
            data["rawHtml"] = html
        if "links" in formats:
            data["links"] = list(page.links)
        if "summary" in formats:
            data["summary"] = page.markdown[:200]
        metadata: dict[str, Any] = {
            "language": "en",
            "sourceURL": url,
            "url": url,
            "statusCode": page.status_code,
            "contentType": "text/html; charset=utf-8",
            "scrapeId": str(uuid.uuid4()),
            "proxyUsed": "basic",
            "cacheState": "miss",
            "creditsUsed": 1,
        }
        if page.title is not None:
            metadata["title"] = page.title
        metadata.update(page.metadata)
        data["metadata"] = metadata
        return {"success": True, "data": data}


__all__ = ["FirecrawlServer", "Page"]
