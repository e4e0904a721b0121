"""The Slack target: the digest's Block Kit messages, POSTed in order to an incoming webhook.

Slack answers 200 `ok`, or an error word in the body (`invalid_blocks`, `no_text`,
`channel_is_archived`...) which becomes the recorded reason; 429 carries Retry-After.
The webhook URL is a secret, so it never appears in an error or a log line.
"""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime, timedelta

import httpx

from core.config import USER_AGENT, SlackTarget
from core.digest import Digest
from core.retry import retry_delay
from core.votes import VoteLinks
from digests import blockkit
from digests.deliver import DeliveryError, Progress

# Waits Slack asks for up to this long happen inside the attempt; longer ones are left to
# the outbox's next run, which is told the earliest time to try.
MAX_INLINE_WAIT = timedelta(seconds=30)
RATE_LIMIT_TRIES = 3
# Slack's answers for a webhook that is revoked, never existed or posts to an archived
# channel: no retry can succeed. A 400 (a payload Slack rejects) is retried, since the
# messages are rendered again at each attempt and an upgraded trendfinder may fix them.
GONE = frozenset({401, 403, 404, 410})


def _retry_delay(response: httpx.Response) -> timedelta:
    # Slack always sends Retry-After with a 429; without one, a second is its usual ask.
    delay = retry_delay(response.headers.get("retry-after"), datetime.now(UTC))
    return timedelta(seconds=1) if delay is None else delay


def _untrusted_certificate(error: BaseException) -> bool:
    # httpx wraps the ssl error (through httpcore); it is somewhere in the chain.
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _post(client: httpx.Client, url: str, message: blockkit.SlackMessage, where: str) -> None:
    for _ in range(RATE_LIMIT_TRIES):
        try:
            response = client.post(url, json=message.payload())
        except httpx.TimeoutException as error:
            raise DeliveryError(f"Slack did not answer {where} in time") from error
        except httpx.HTTPError as error:
            if _untrusted_certificate(error):
                raise DeliveryError(
                    f"cannot verify the TLS certificate of the webhook for {where}: {error}",
                    permanent=True,
                ) from error
            raise DeliveryError(f"cannot reach Slack for {where}: {error}") from error
        if response.status_code == 200:
            return
        reason = " ".join(response.text.split())[:200] or response.reason_phrase
        if response.status_code != 429:
            raise DeliveryError(
                f"Slack refused {where}: HTTP {response.status_code} {reason}",
                permanent=response.status_code in GONE,
            )
        wait = _retry_delay(response)
        if wait > MAX_INLINE_WAIT:
            break
        time.sleep(wait.total_seconds())
    raise DeliveryError(
        f"Slack rate-limited {where} (HTTP 429, retry after {wait.total_seconds():g} s)",
        retry_delay=wait,
    )


def post_digest(
    digest: Digest,
    target: SlackTarget,
    progress: Progress,
    *,
    archive: bool,
    votes: VoteLinks | None = None,
) -> str:
    messages = blockkit.messages(digest, archive=archive, votes=votes)
    total = len(messages)
    headers = {"User-Agent": USER_AGENT}
    with httpx.Client(timeout=target.timeout, headers=headers, follow_redirects=False) as client:
        for index in range(progress.done, total):
            where = f"message {index + 1} of {total}" if total > 1 else "the message"
            _post(client, target.webhook_url, messages[index], where)
            progress.part_sent(index + 1)
    return f"{total} message{'s' if total > 1 else ''} to Slack ({target.label})"
