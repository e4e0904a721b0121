"""Scrape pages through Firecrawl (firecrawl-py v4), with a timeout and readable errors.

The SDK is synchronous and has no HTTP timeout by default; it does not retry 429s, and
connection failures reach the caller as raw `requests` exceptions. This wrapper runs it in
a thread, always passes a timeout, and turns every failure into FirecrawlFailure whose
message names the problem, with the delay Firecrawl asked for when it rate-limits.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from firecrawl import (
    Firecrawl,
    FirecrawlError,
    PaymentRequiredError,
    RateLimitError,
    RequestTimeoutError,
    UnauthorizedError,
)
from pydantic import ValidationError

from core.config import FirecrawlConfig
from core.errors import SourceError
from core.retry import retry_delay
from sources.text import html_to_text

CLOUD_URL = "https://api.firecrawl.dev"
# Without a Retry-After, a 429 still holds Firecrawl off for this long.
DEFAULT_RATE_LIMIT_WAIT = timedelta(seconds=60)


class FirecrawlFailure(SourceError):
    """A scrape that produced no page; `retry_after` is set when Firecrawl asked us to wait."""

    def __init__(self, message: str, retry_after: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ScrapedPage:
    url: str  # where the page was found (after the site's redirects), as Firecrawl reports
    status: int | None  # the site's HTTP status, as Firecrawl reports it
    markdown: str
    links: tuple[str, ...]
    title: str | None
    published: datetime | None


class FirecrawlClient:
    """One Firecrawl account for a collection cycle; safe to share between sources.

    After a 429 every source waits: `paused_until` holds the time Firecrawl asked for.
    """

    def __init__(self, config: FirecrawlConfig) -> None:
        self.api_url = config.api_url or CLOUD_URL
        self.timeout = config.timeout
        self._lock = threading.Lock()
        self._paused_until: datetime | None = None
        # One attempt per call: a failed source is retried by the collector's backoff, and
        # the SDK's own retries would multiply the timeout.
        self._sdk = Firecrawl(
            api_key=config.api_key or None,
            api_url=self.api_url,
            timeout=config.timeout,
            max_retries=1,
        )

    @property
    def host(self) -> str:
        return urlsplit(self.api_url).hostname or self.api_url

    @property
    def paused_until(self) -> datetime | None:
        with self._lock:
            return self._paused_until

    async def scrape(self, url: str, *, with_links: bool = False) -> ScrapedPage:
        """The page's main content as markdown (and its links); FirecrawlFailure otherwise."""
        paused = self.paused_until
        if paused is not None and paused > datetime.now(UTC):
            raise FirecrawlFailure(
                f"Firecrawl rate limit: waiting until {paused:%Y-%m-%d %H:%M:%S} UTC", paused
            )
        return await asyncio.to_thread(self._scrape, url, with_links)

    def _scrape(self, url: str, with_links: bool) -> ScrapedPage:
        formats: list[Any] = ["markdown", "links"] if with_links else ["markdown"]
        try:
            document = self._sdk.scrape(
                url,
                formats=formats,
                only_main_content=True,
                # The service gives up a little before our HTTP timeout, so a slow site
                # comes back as Firecrawl's own readable 408, not a dropped connection.
                timeout=max(1000, int(self.timeout * 1000) - 2000),
                auto_resume=False,
            )
        except RateLimitError as error:
            wait = self._pause(error)
            raise FirecrawlFailure(
                f"Firecrawl rate limit (HTTP 429): waiting until {wait:%Y-%m-%d %H:%M:%S} UTC",
                wait,
            ) from None
        except UnauthorizedError:
            raise FirecrawlFailure(
                f"Firecrawl at {self.api_url} refused the API key (HTTP 401): check "
                "firecrawl.api_key"
            ) from None
        except PaymentRequiredError:
            raise FirecrawlFailure(
                "Firecrawl says the account is out of credits (HTTP 402)"
            ) from None
        except RequestTimeoutError:
            raise FirecrawlFailure(f"Firecrawl timed out scraping {url}") from None
        except FirecrawlError as error:
            raise FirecrawlFailure(_describe(error, url)) from None
        except requests.Timeout:
            raise FirecrawlFailure(
                f"no answer from Firecrawl at {self.api_url} within {self.timeout:g} s"
            ) from None
        except requests.ConnectionError as error:
            raise FirecrawlFailure(
                f"cannot connect to Firecrawl at {self.api_url}: {_reason(error)}"
            ) from None
        except requests.RequestException as error:
            raise FirecrawlFailure(f"Firecrawl request failed: {_reason(error)}") from None
        except (ValidationError, ValueError, TypeError) as error:
            raise FirecrawlFailure(f"unexpected answer from Firecrawl: {error}") from None
        metadata = document.metadata_typed
        return ScrapedPage(
            url=metadata.url or metadata.source_url or url,
            status=metadata.status_code,
            markdown=document.markdown or "",
            links=tuple(link for link in document.links or () if isinstance(link, str)),
            title=metadata.title or metadata.og_title,
            published=_date(
                metadata.published_time or metadata.dc_terms_created or metadata.dc_date
            ),
        )

    def _pause(self, error: RateLimitError) -> datetime:
        now = datetime.now(UTC)
        header = error.response.headers.get("retry-after") if error.response is not None else None
        delay = retry_delay(header, now)
        wait = now + (DEFAULT_RATE_LIMIT_WAIT if delay is None else delay)
        with self._lock:
            if self._paused_until is None or wait > self._paused_until:
                self._paused_until = wait
            return self._paused_until


def _describe(error: FirecrawlError, url: str) -> str:
    status = f" (HTTP {error.status_code})" if error.status_code else ""
    message = str(error).split(" - ")[0]
    return f"Firecrawl could not scrape {url}{status}: {message}"


def _reason(error: requests.RequestException) -> str:
    # requests nests the useful part ("Connection refused") deep in urllib3's message.
    text = str(error)
    match = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return match.group(1) if match else text or type(error).__name__


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()\s]|\([^)]*\))*(?:\s+\"[^\"]*\")?\)")
_REFERENCE = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$\n?", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.MULTILINE)
_SETEXT = re.compile(r"^[ \t]*(=+|-+)[ \t]*$\n?", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE)
_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(```|~~~).*$\n?", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*([-*_][ \t]*){3,}$\n?", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|\*|~~)(?=\S)(.+?)(?<=\S)\1")
# Underscores mark emphasis only outside words: snake_case_names stay whole.
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_CODE = re.compile(r"`([^`]*)`")
_TABLE_RULE = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$\n?", re.M
)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")


def markdown_links(markdown: str) -> list[str]:
    """Link targets in markdown, in order (images left out)."""
    return [
        match.group(1)
        for match in re.finditer(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?", markdown)
        if match.group(1)
    ]


def markdown_to_text(markdown: str, max_chars: int | None = None) -> str:
    """Markdown as a reader would see it: no markup, link texts kept, images dropped."""
    text = _FENCE.sub("", markdown)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE.sub("", text)
    text = _HEADING.sub(r"\1", text)
    text = _RULE.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _SETEXT.sub("", text)
    text = _QUOTE.sub("", text)
    text = _LIST.sub("", text)
    text = _CODE.sub(r"\1", text)
    for _ in range(2):  # nested emphasis: ***both***
        text = _EMPHASIS.sub(r"\2", text)
        text = _UNDERSCORE_EMPHASIS.sub(r"\2", text)
    text = _ESCAPE.sub(r"\1", text)
    text = "\n".join(line.strip().strip("|").replace(" | ", " · ") for line in text.split("\n"))
    # What is left may hold raw HTML and entities; the text module makes it safe plain text.
    return html_to_text(text, max_chars)
