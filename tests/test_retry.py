"""One Retry-After parser and one backoff rule for every retrying part of trendfinder."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import httpx2

from core.retry import MAX_RETRY_DELAY, backoff, retry_delay
from digests import ask
from digests.deliver import slack

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_delta_seconds_and_fractions():
    assert retry_delay("120", NOW) == timedelta(seconds=120)
    assert retry_delay(" 1.5 ", NOW) == timedelta(seconds=1.5)


def test_http_date_is_a_delay_from_now():
    later = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    assert retry_delay(later, NOW) == timedelta(minutes=5)
    earlier = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert retry_delay(earlier, NOW) == timedelta(0)


def test_absurd_or_unreadable_values():
    assert retry_delay(str(10**30), NOW) == MAX_RETRY_DELAY
    assert retry_delay(format_datetime(NOW + timedelta(days=400), usegmt=True), NOW) == (
        MAX_RETRY_DELAY
    )
    for value in (None, "", "soon", "-5", "1e9"):
        assert retry_delay(value, NOW) is None


def test_the_model_and_slack_read_the_http_date_form_too():
    """Before one shared parser, the model and Slack copies ignored an HTTP-date."""
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    model_wait = ask._retry_delay(httpx2.Response(429, headers={"Retry-After": in_a_minute}))
    assert model_wait is not None and 50 < model_wait <= 60
    slack_wait = slack._retry_delay(httpx.Response(429, headers={"Retry-After": in_a_minute}))
    assert timedelta(seconds=50) < slack_wait <= timedelta(seconds=60)
    assert ask._retry_delay(httpx2.Response(429, headers={"retry-after-ms": "250"})) == 0.25


def test_backoff_doubles_up_to_its_cap():
    first, cap = timedelta(minutes=1), timedelta(hours=6)
    assert [backoff(first, n, cap) for n in range(4)] == [
        timedelta(minutes=m) for m in (1, 2, 4, 8)
    ]
    assert backoff(first, 10_000, cap) == cap


def test_backoff_jitter_stays_within_its_bounds():
    rng = random.Random(7)
    waits = {
        backoff(timedelta(seconds=10), 2, timedelta(hours=1), jitter=0.2, rng=rng)
        for _ in range(50)
    }
    assert len(waits) > 10
    assert all(timedelta(seconds=32) <= wait <= timedelta(seconds=48) for wait in waits)
