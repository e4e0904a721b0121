"""Retrying, the same way everywhere: one Retry-After parser and one backoff rule, shared by
feeds, sites, Firecrawl, the model and the delivery targets.

Names: a `retry_delay` is how long to wait (a timedelta); a `retry_after` is the earliest
moment of the next attempt (a datetime), as in FetchOutcome.retry_after.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

# A server may ask us to wait, but not to forget it: longer requests count as a day.
MAX_RETRY_DELAY = timedelta(days=1)
# Delta-seconds is an integer by RFC 9110; some services send "1.5".
_DELTA_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")


def retry_delay(header: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header, delta-seconds or an HTTP-date, as a delay from `now` (never
    negative, at most MAX_RETRY_DELAY); None when the header is absent or unreadable."""
    if not header:
        return None
    value = header.strip()
    if _DELTA_SECONDS.match(value):
        # Capped before conversion: 10**30 seconds must not overflow timedelta.
        return timedelta(seconds=min(float(value), MAX_RETRY_DELAY.total_seconds()))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000" means UTC without saying where the sender is
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment - now, timedelta(0)), MAX_RETRY_DELAY)


def backoff(
    first: timedelta,
    attempt: int,
    cap: timedelta,
    *,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> timedelta:
    """The wait before retry number `attempt` (0 for the first): `first` doubled each time,
    at most `cap`, then scaled by a random factor within ±`jitter` (0.2 is ±20%), so many
    things failing together do not all retry at the same moment."""
    # The exponent is bounded so a large attempt count cannot overflow.
    seconds = min(first.total_seconds() * 2.0 ** min(attempt, 64), cap.total_seconds())
    if jitter:
        seconds *= (rng or random.Random()).uniform(1 - jitter, 1 + jitter)
    return timedelta(seconds=seconds)
