"""When to try a source again: its interval after a success, backing off after failures."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sources.model import FetchOutcome

MAX_BACKOFF = timedelta(days=1)


def next_attempt(
    outcome: FetchOutcome,
    interval: timedelta,
    failures_before: int,
    now: datetime,
    rng: random.Random | None = None,
) -> datetime:
    """The earliest time the source should be fetched again.

    Failures back off exponentially with jitter (so many sources failing together do not
    retry together), capped at a day; a server's Retry-After is a lower bound.
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
