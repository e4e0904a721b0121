"""WebhookReceiver: an HTTP endpoint that takes JSON POSTs and, given the secret, checks
trendfinder's signature as the README's receiver example does (401 when it is wrong).

Also the far end of Apprise's `json://127.0.0.1:PORT/path` URLs, which POST
`{"version", "title", "message", "type", ...}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer, take_scripted

# A signature older (or newer) than this is refused as a possible replay.
TOLERANCE = 300


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """What a receiver checks: a fresh timestamp, and the HMAC of "<timestamp>.<body>"."""
    stamp = headers.get("x-trendfinder-timestamp", "")
    given = headers.get("x-trendfinder-signature", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE:
        return False
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(given, "sha256=" + mac.hexdigest())


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    remaining: int


class _Handler(LoopbackHandler):
    owner: WebhookReceiver

    def do_POST(self) -> None:
        rec = self.record(self.read_body())
        owner = self.owner
        headers: dict[str, str] = {}
        if failure := owner._next_failure():
            status, body, headers = failure.status, b"scripted failure", failure.headers
        elif owner.secret and not verify(owner.secret, rec.headers, rec.body, time.time()):
            status, body = 401, b"bad signature"
        else:
            try:
                json.loads(rec.body)
                status, body = 200, b"ok"
            except ValueError:
                status, body = 400, b"not JSON"
        # Recorded before the answer goes out: the sender may look as soon as it has it.
        with owner._lock:
            owner._received.append(Received(rec.path, rec.headers, rec.body, status))
        self.send_bytes(status, body, headers=headers)


class WebhookReceiver(LoopbackHTTPServer):
    handler_class = _Handler

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self._received: list[Received] = []
        self._failures: deque[_Failure] = deque()

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status == 200]

    def fail(self, status: int, *, retry_after: int | None = None, times: int = 1) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self._lock:
            self._failures.append(_Failure(status, headers, times))

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return take_scripted(self._failures)
