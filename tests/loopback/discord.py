"""DiscordWebhook: a channel webhook endpoint that validates messages as Discord does.

`POST /api/webhooks/<id>/<token>` answers 204 (200 with the message under `?wait=true`),
400 `{"code": 50035, "message": "Invalid Form Body", "errors": {...}}` for a payload over
Discord's limits, 404 `{"code": 10015, "message": "Unknown Webhook"}` for another token,
and, when scripted, 429 `{"message": "You are being rate limited.", "retry_after": s,
"global": false}` with the `X-RateLimit-*` headers Discord sends.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer, take_scripted

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256


def form_errors(payload: Any) -> dict[str, Any]:
    """Discord's nested `errors` object for what it rejects; empty when valid."""
    errors: dict[str, Any] = {}

    def too_long(path: list[str | int], limit: int) -> None:
        node = errors
        for key in path[:-1]:
            node = node.setdefault(str(key), {})
        node[str(path[-1])] = {
            "_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
            ]
        }

    if not isinstance(payload, dict):
        return {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries"}]}
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if not content and not embeds:
        return {"content": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "empty"}]}}
    if len(content) > CONTENT_MAX:
        too_long(["content"], CONTENT_MAX)
    if len(embeds) > EMBEDS_MAX:
        too_long(["embeds"], EMBEDS_MAX)
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in (("title", TITLE_MAX), ("description", DESCRIPTION_MAX)):
            text = embed.get(key) or ""
            total += len(text)
            if len(text) > limit:
                too_long(["embeds", i, key], limit)
        for key, limit in (("footer", FOOTER_MAX), ("author", AUTHOR_MAX)):
            part = embed.get(key) or {}
            text = part.get("text" if key == "footer" else "name") or ""
            total += len(text)
            if len(text) > limit:
                too_long(["embeds", i, key], limit)
        fields = embed.get("fields") or []
        if len(fields) > FIELDS_MAX:
            too_long(["embeds", i, "fields"], FIELDS_MAX)
        for j, field in enumerate(fields):
            total += len(field.get("name", "")) + len(field.get("value", ""))
            if len(field.get("name", "")) > FIELD_NAME_MAX:
                too_long(["embeds", i, "fields", j, "name"], FIELD_NAME_MAX)
            if len(field.get("value", "")) > FIELD_VALUE_MAX:
                too_long(["embeds", i, "fields", j, "value"], FIELD_VALUE_MAX)
    if total > EMBED_TOTAL_MAX:
        too_long(["embeds"], EMBED_TOTAL_MAX)
    return errors


@dataclass(frozen=True)
class Post:
    path: str
    payload: dict[str, Any] | None
    status: int


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    remaining: int


class _Handler(LoopbackHandler):
    owner: DiscordWebhook

    def do_POST(self) -> None:
        rec = self.record(self.read_body())
        owner = self.owner
        if rec.path != owner.path:
            self._answer(rec.path, None, 404, {"message": "Unknown Webhook", "code": 10015})
            return
        if failure := owner._next_failure():
            self._answer(rec.path, None, failure.status, failure.body, failure.headers)
            return
        try:
            payload = json.loads(rec.body)
        except ValueError:
            self._answer(rec.path, None, 400, {"message": "Cannot send an empty message"})
            return
        if errors := form_errors(payload):
            body = {"code": 50035, "errors": errors, "message": "Invalid Form Body"}
            self._answer(rec.path, payload, 400, body)
            return
        headers = {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": str(owner.bucket_remaining),
            "X-RateLimit-Reset-After": "0.1",
            "X-RateLimit-Bucket": "loopback",
        }
        if "wait=true" in rec.query:
            self._answer(rec.path, payload, 200, {"id": "1", **payload}, headers)
        else:
            self._answer(rec.path, payload, 204, None, headers)

    def _answer(
        self,
        path: str,
        payload: dict[str, Any] | None,
        status: int,
        body: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.owner._post(Post(path, payload, status))
        if body is None:
            self.send_bytes(status, b"", None, headers or {})
        else:
            self.send_json(status, body, headers or {})


class DiscordWebhook(LoopbackHTTPServer):
    handler_class = _Handler
    path = "/api/webhooks/112233445566778899/SECRET-webhook-token"

    def __init__(self) -> None:
        super().__init__()
        self._posts: list[Post] = []
        self._failures: deque[_Failure] = deque()
        # What X-RateLimit-Remaining says after an accepted message.
        self.bucket_remaining = 4

    @property
    def webhook_url(self) -> str:
        return self.url_for(self.path)

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.payload for p in self._posts if p.status in (200, 204) and p.payload]

    @property
    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    def fail(self, status: int, body: dict[str, Any], *, times: int = 1) -> None:
        with self._lock:
            self._failures.append(_Failure(status, body, {}, times))

    def rate_limit(self, retry_after: float, *, times: int = 1) -> None:
        """Answer the next POSTs 429, as Discord does when a bucket is empty."""
        body = {"message": "You are being rate limited.", "retry_after": retry_after}
        headers = {
            "Retry-After": str(int(retry_after + 0.999)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": str(retry_after),
            "X-RateLimit-Scope": "user",
        }
        with self._lock:
            self._failures.append(_Failure(429, {**body, "global": False}, headers, times))

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return take_scripted(self._failures)

    def _post(self, post: Post) -> None:
        with self._lock:
            self._posts.append(post)
