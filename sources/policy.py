"""When to try a source again: its interval after a success, backing off after failures,
and never sooner than the server asked (Retry-After, Cache-Control max-age, RSS ttl)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from core.items import FetchOutcome
from core.retry import MAX_RETRY_DELAY, backoff

MAX_BACKOFF = timedelta(days=1)
# A server may ask to be polled less often, but not to be forgotten: hints count up to a day.
MAX_SERVER_DELAY = MAX_RETRY_DELAY
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
        delay = backoff(interval, failures_before, MAX_BACKOFF, jitter=0.2, rng=rng)
    else:
        delay = interval * rng.uniform(0.95, 1.05)
    later: datetime = now + delay
    if outcome.retry_after and outcome.retry_after > later:
        later = outcome.retry_after
    return later


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
