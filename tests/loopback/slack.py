"""SlackReceiver: an incoming-webhook endpoint that validates payloads as Slack does."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ._http import LoopbackHandler, LoopbackHTTPServer, take_scripted

MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BLOCK_ID_MAX = 255
IMAGE_URL_MAX = 3000
ALT_TEXT_MAX = 2000


class BlockError(ValueError):
    """Why a payload is rejected; str() is the human reason, .code the HTTP body."""

    def __init__(self, reason: str, code: str = "invalid_blocks") -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Delivery:
    """One POST as answered: path, decoded payload (None if undecodable), status, body."""

    path: str
    payload: dict[str, Any] | None
    status: int
    response: str
    reason: str = ""


def _text_object(obj: Any, where: str, *, max_len: int, plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        raise BlockError(f"{where}: must be a text object (plain_text or mrkdwn)")
    if plain_only and obj["type"] != "plain_text":
        raise BlockError(f"{where}: must be plain_text")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise BlockError(f"{where}.text: must be more than 0 characters")
    if len(text) > max_len:
        raise BlockError(f"{where}.text: must be less than {max_len + 1} characters")


def _image(obj: dict[str, Any], where: str) -> None:
    url, alt = obj.get("image_url"), obj.get("alt_text")
    if not isinstance(url, str) or not url or len(url) > IMAGE_URL_MAX:
        raise BlockError(f"{where}.image_url: required, at most {IMAGE_URL_MAX} characters")
    if not isinstance(alt, str) or not alt or len(alt) > ALT_TEXT_MAX:
        raise BlockError(f"{where}.alt_text: required, at most {ALT_TEXT_MAX} characters")


def validate_blocks(blocks: Any) -> None:
    """Raise BlockError for what Slack's Block Kit validation rejects."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise BlockError("blocks must be an array of objects", "invalid_blocks_format")
    if len(blocks) > MAX_BLOCKS:
        raise BlockError(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > BLOCK_ID_MAX:
                raise BlockError(f"{where}.block_id: at most {BLOCK_ID_MAX} characters")
            if block_id in seen_ids:
                raise BlockError(f"{where}.block_id: duplicate block_id")
            seen_ids.add(block_id)
        kind = block.get("type")
        if kind == "header":
            _text_object(block.get("text"), f"{where}.text", max_len=HEADER_MAX, plain_only=True)
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and fields is None:
                raise BlockError(f"{where}: must provide either text or fields")
            if text is not None:
                _text_object(text, f"{where}.text", max_len=SECTION_TEXT_MAX)
            if fields is not None:
                if not isinstance(fields, list) or not fields or len(fields) > SECTION_FIELDS_MAX:
                    raise BlockError(f"{where}.fields: 1 to {SECTION_FIELDS_MAX} items")
                for j, f in enumerate(fields):
                    _text_object(f, f"{where}.fields[{j}]", max_len=FIELD_TEXT_MAX)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                raise BlockError(f"{where}.elements: must provide at least 1 item")
            if len(elements) > CONTEXT_ELEMENTS_MAX:
                raise BlockError(f"{where}.elements: no more than {CONTEXT_ELEMENTS_MAX} items")
            for j, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") == "image":
                    _image(el, f"{where}.elements[{j}]")
                else:
                    _text_object(el, f"{where}.elements[{j}]", max_len=SECTION_TEXT_MAX)
        elif kind == "image":
            _image(block, where)
            if block.get("title") is not None:
                _text_object(
                    block["title"], f"{where}.title", max_len=FIELD_TEXT_MAX, plain_only=True
                )
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS_MAX:
                raise BlockError(f"{where}.elements: 1 to {ACTIONS_ELEMENTS_MAX} items")
        elif kind == "rich_text":
            if not isinstance(block.get("elements"), list):
                raise BlockError(f"{where}.elements: required")
        elif kind != "divider":
            raise BlockError(f"{where}.type: unsupported block type {kind!r}")


def validate_payload(payload: Any) -> None:
    """Raise BlockError (code no_text / invalid_blocks / ...) like the webhook endpoint."""
    if not isinstance(payload, dict):
        raise BlockError("payload must be a JSON object", "invalid_payload")
    text = payload.get("text")
    if text is not None and not isinstance(text, str):
        raise BlockError("text must be a string", "invalid_payload")
    blocks = payload.get("blocks")
    if blocks is not None:
        validate_blocks(blocks)
    if not text and not blocks and not payload.get("attachments"):
        raise BlockError("message has no text, blocks or attachments", "no_text")


@dataclass
class _Failure:
    status: int
    body: str
    headers: dict[str, str]
    remaining: int


class _SlackHandler(LoopbackHandler):
    owner: SlackReceiver

    def _answer(
        self,
        path: str,
        payload: Any,
        status: int,
        body: str,
        headers: dict[str, str] | None = None,
        reason: str = "",
    ) -> None:
        self.owner._deliver(
            Delivery(path, payload if isinstance(payload, dict) else None, status, body, reason)
        )
        self.send_bytes(status, body.encode(), "text/plain; charset=utf-8", headers or {})

    def do_POST(self) -> None:
        raw = self.read_body()
        rec = self.record(raw)
        if not rec.path.startswith("/services/"):
            self._answer(rec.path, None, 404, "no_service")
            return
        failure = self.owner._next_failure()
        if failure is not None:
            self._answer(rec.path, None, failure.status, failure.body, failure.headers)
            return
        try:
            if rec.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                payload = json.loads(parse_qs(raw.decode())["payload"][0])
            else:
                payload = json.loads(raw)
        except (ValueError, KeyError, UnicodeDecodeError):
            self._answer(rec.path, None, 400, "invalid_payload", reason="body is not JSON")
            return
        try:
            validate_payload(payload)
        except BlockError as err:
            self._answer(rec.path, payload, 400, err.code, reason=str(err))
            return
        self._answer(rec.path, payload, 200, "ok")


class SlackReceiver(LoopbackHTTPServer):
    """POST a payload to ``receiver.webhook_url`` (any path under /services/ is a webhook;
    others get 404 ``no_service``). Scripted failures are answered before validation,
    as Slack rate-limits before it parses."""

    handler_class = _SlackHandler
    WEBHOOK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

    def __init__(self) -> None:
        super().__init__()
        self._deliveries: list[Delivery] = []
        self._failures: deque[_Failure] = deque()

    @property
    def webhook_url(self) -> str:
        return self.url_for(self.WEBHOOK_PATH)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted (200 ok) payloads, in order."""
        with self._lock:
            return [d.payload for d in self._deliveries if d.status == 200 and d.payload]

    @property
    def deliveries(self) -> list[Delivery]:
        """Every POST with its answer (accepted, rejected and scripted failures)."""
        with self._lock:
            return list(self._deliveries)

    def fail(
        self,
        status: int,
        body: str | None = None,
        *,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` POSTs with `status` (text/plain `body`; defaults:
        429 rate_limited, 500 internal_error, 403 action_prohibited, 404
        channel_not_found, 410 channel_is_archived)."""
        defaults = {
            429: "rate_limited",
            500: "internal_error",
            403: "action_prohibited",
            404: "channel_not_found",
            410: "channel_is_archived",
            503: "service_unavailable",
        }
        headers = {} if retry_after is None else {"Retry-After": str(int(retry_after))}
        with self._lock:
            self._failures.append(
                _Failure(status, body or defaults.get(status, "error"), headers, times)
            )

    def fail_rate_limit(self, retry_after: float = 1, *, times: int = 1) -> None:
        self.fail(429, retry_after=retry_after, times=times)

    def reset_faults(self) -> None:
        """Forget the scripted failures not yet used."""
        with self._lock:
            self._failures.clear()

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return take_scripted(self._failures)

    def _deliver(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)


__all__ = ["BlockError", "Delivery", "SlackReceiver", "validate_blocks", "validate_payload"]
