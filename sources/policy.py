"""When to try a source again: its interval after a success, backing off after failures,
and never sooner than the server asked (Retry-After, Cache-Control max-age, RSS ttl)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from core.items import FetchOutcome

MAX_BACKOFF = timedelta(days=1)
# A server may ask to be polled less often, but not to be forgotten: hints count up to a day.
MAX_SERVER_DELAY = timedelta(days=1)
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def next_attempt(
    outcome: FetchOutcome,
    interval: timedelta,
    failures_before: int,
    now: datetime,
    rng: random.Random | None = None,
) -> datetime:
    """The earliest time the source should be fetched again.

    Failures back off exponentially with jitter (so many sources failing together do not
    retry together), capped at a day; what the server asked for is a lower bound.
    """
    rng = rng or random.Random()
    if outcome.status == "error":
        failures = failures_before + 1
        delay = min(interval * (2 ** min(failures - 1, 16)), MAX_BACKOFF)
        delay *= rng.uniform(0.8, 1.2)
    else:
        delay = interval * rng.uniform(0.95, 1.05)
    later: datetime = now + delay
    if outcome.retry_after and outcome.retry_after > later:
        later = outcome.retry_after
    return later


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (delay in seconds, or an HTTP date) as a delay from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return _seconds(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - now, timedelta(0))


def max_age(headers: Mapping[str, str]) -> timedelta | None:
    """How long the response may be cached (Cache-Control max-age), if the server said."""
    control = headers.get("cache-control", "")
    if "no-cache" in control.lower() or "no-store" in control.lower():
        return None
    match = _MAX_AGE.search(control)
    return _seconds(match.group(1)) if match else None


def not_before(now: datetime, *delays: timedelta | None) -> datetime | None:
    """The earliest next poll the server's hints allow, capped at MAX_SERVER_DELAY."""
    longest = max((delay for delay in delays if delay), default=None)
    if longest is None:
        return None
    return now + min(longest, MAX_SERVER_DELAY)


def _seconds(digits: str) -> timedelta:
    # Capped before conversion: a header of 10**30 seconds must not overflow timedelta.
    return timedelta(seconds=min(int(digits), int(MAX_SERVER_DELAY.total_seconds())))
