"""POST a delivery's messages in order to a chat service, one at a time, within its rate limits.

Discord, Telegram and the generic webhook share this loop; each says what its service's
answers mean (`Answer`). A part is recorded as soon as it is accepted, so a retry continues
after the last part that arrived. Rate limits the service asks for are waited out here up
to MAX_INLINE_WAIT; longer ones go back to the outbox with the time to try again. Secrets
in the URL (a webhook token, a bot token) never reach an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from core.config import USER_AGENT
from digests.deliver import DeliveryError, Progress

MAX_INLINE_WAIT = 30.0
RATE_LIMIT_TRIES = 3


@dataclass(frozen=True)
class Answer:
    """What one response means: accepted, rate-limited (wait seconds) or refused."""

    accepted: bool
    reason: str = ""
    wait: float | None = None
    permanent: bool = False
    # Seconds to pause before the next part even though this one was accepted (the
    # service said its bucket is empty).
    pause: float = 0.0


@dataclass(frozen=True)
class Part:
    """One message: its body, and headers made when it is sent (a fresh signature)."""

    body: bytes
    headers: Callable[[bytes], Mapping[str, str]] = field(default=lambda body: {})


Judge = Callable[[httpx.Response], Answer]


def post_parts(
    service: str,
    url: str,
    parts: Sequence[Part],
    judge: Judge,
    progress: Progress,
    *,
    timeout: float,
    secrets: Sequence[str] = (),
) -> int:
    """Send the parts not yet sent in order; return how many parts the delivery has."""
    total = len(parts)
    headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
        for index in range(progress.done, total):
            where = f"message {index + 1} of {total}" if total > 1 else "the message"
            answer = _post(client, service, url, parts[index], judge, where, secrets)
            progress.part_sent(index + 1)
            if answer.pause and index + 1 < total:
                time.sleep(min(answer.pause, MAX_INLINE_WAIT))
    return total


def _post(
    client: httpx.Client,
    service: str,
    url: str,
    part: Part,
    judge: Judge,
    where: str,
    secrets: Sequence[str],
) -> Answer:
    wait = 0.0
    for _ in range(RATE_LIMIT_TRIES):
        try:
            response = client.post(url, content=part.body, headers=dict(part.headers(part.body)))
        except httpx.TimeoutException as error:
            raise DeliveryError(f"{service} did not answer {where} in time") from error
        except httpx.HTTPError as error:
            reason = _hide(f"{error}", secrets)
            raise DeliveryError(f"cannot reach {service} for {where}: {reason}") from error
        answer = judge(response)
        if answer.accepted:
            return answer
        if answer.wait is None:
            reason = _hide(answer.reason, secrets)
            raise DeliveryError(
                f"{service} refused {where}: HTTP {response.status_code} {reason}",
                permanent=answer.permanent,
            )
        wait = answer.wait
        if wait > MAX_INLINE_WAIT:
            break
        time.sleep(wait)
    raise DeliveryError(
        f"{service} rate-limited {where} (HTTP 429, retry after {wait:g} s)",
        retry_delay=timedelta(seconds=wait),
    )


def _hide(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:300]


def seconds(value: object, default: float = 1.0) -> float:
    """A wait a service gave as a number of seconds (Discord's JSON `retry_after` and
    `X-RateLimit-Reset-After`, Telegram's `parameters.retry_after`), never negative.
    Retry-After headers go through core.retry instead."""
    try:
        return max(0.0, float(str(value)))
    except ValueError:
        return default


def permanent_status(status: int) -> bool:
    """4xx other than timeouts and rate limits: the same request will fail again."""
    return 400 <= status < 500 and status not in (408, 409, 425, 429)
