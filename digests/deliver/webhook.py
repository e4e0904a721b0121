"""The generic webhook target: the digest JSON POSTed to a URL, signed when a secret is set.

With a secret, each request carries `X-Trendfinder-Timestamp` (Unix seconds) and
`X-Trendfinder-Signature: sha256=<hex>`, the HMAC-SHA256 of "<timestamp>.<body>" under the
secret, so a receiver can check that the body came from here, unchanged and recently.
`X-Trendfinder-Digest` carries the digest id: a receiver that saw it already may drop a
re-sent copy. 2xx is accepted; 408, 429 and 5xx are retried (Retry-After honoured); other
4xx are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx

from core.config import WebhookTarget
from core.digest import Digest
from core.retry import retry_delay
from digests.deliver import Progress
from digests.deliver.chat import Answer, Part, permanent_status, post_parts

SIGNATURE_HEADER = "X-Trendfinder-Signature"
TIMESTAMP_HEADER = "X-Trendfinder-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def judge(response: httpx.Response) -> Answer:
    if 200 <= response.status_code < 300:
        return Answer(accepted=True)
    if response.status_code in (429, 503):
        delay = retry_delay(response.headers.get("retry-after"), datetime.now(UTC))
        return Answer(accepted=False, wait=delay.total_seconds() if delay else 1.0)
    reason = " ".join(response.text.split())[:200] or response.reason_phrase
    return Answer(accepted=False, reason=reason, permanent=permanent_status(response.status_code))


def post_to_webhook(digest: Digest, target: WebhookTarget) -> str:
    def headers(body: bytes) -> Mapping[str, str]:
        fixed = {"X-Trendfinder-Digest": digest.id}
        if target.secret is None:
            return fixed
        stamp = str(int(time.time()))
        return {
            **fixed,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(target.secret, stamp, body),
        }

    body = digest.to_json().encode()
    post_parts(
        "the webhook",
        target.url,
        [Part(body, headers)],
        judge,
        Progress(),
        timeout=target.timeout,
        secrets=(target.url,),
    )
    return f"digest JSON to the webhook ({target.label})"
