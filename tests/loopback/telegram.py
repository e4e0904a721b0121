"""TelegramBot: the Bot API's sendMessage as Telegram answers it.

`POST /bot<token>/sendMessage` with JSON. Answers `{"ok": true, "result": {...}}`, or
`{"ok": false, "error_code": N, "description": "..."}`: 401 "Unauthorized" for another
token, 400 "Bad Request: chat not found", "Bad Request: message is too long" (over 4,096
UTF-16 code units once entities are parsed), "Bad Request: can't parse entities: ..." for
HTML outside Telegram's subset, and (scripted) 429 "Too Many Requests: retry after N"
with `parameters.retry_after`.
"""

from __future__ import annotations

import html
import html.parser
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer, take_scripted

MESSAGE_MAX = 4096
ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-spoiler",
        "span",
        "tg-emoji",
    }
)


class EntityError(ValueError):
    pass


class _Parser(html.parser.HTMLParser):
    """Telegram's HTML: only its tags, every tag closed, `&` only in entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.open: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise EntityError(f'Unmatched end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> tuple[str, list[str]]:
    """The plain text and the links of an HTML-mode message; EntityError if invalid."""
    parser = _Parser()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return html.unescape("".join(parser.text)), parser.links


@dataclass(frozen=True)
class Sent:
    chat_id: str
    text: str  # as the chat shows it, tags parsed
    html: str
    links: tuple[str, ...]


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    remaining: int


class _Handler(LoopbackHandler):
    owner: TelegramBot

    def do_POST(self) -> None:
        rec = self.record(self.read_body())
        owner = self.owner
        if rec.path != f"/bot{owner.token}/sendMessage":
            self._fail(401 if rec.path.endswith("/sendMessage") else 404, "Unauthorized")
            return
        if failure := owner._next_failure():
            self.send_json(failure.status, failure.body)
            return
        try:
            payload = json.loads(rec.body)
        except ValueError:
            self._fail(400, "Bad Request: invalid JSON")
            return
        if str(payload.get("chat_id")) not in owner.chats:
            self._fail(400, "Bad Request: chat not found")
            return
        source = payload.get("text") or ""
        if not source.strip():
            self._fail(400, "Bad Request: message text is empty")
            return
        try:
            text, links = parse(source) if payload.get("parse_mode") == "HTML" else (source, [])
        except EntityError as error:
            self._fail(400, f"Bad Request: can't parse entities: {error}")
            return
        if len(text.encode("utf-16-le")) // 2 > MESSAGE_MAX:
            self._fail(400, "Bad Request: message is too long")
            return
        with owner._lock:
            owner._sent.append(Sent(str(payload["chat_id"]), text, source, tuple(links)))
            number = len(owner._sent)
        self.send_json(200, {"ok": True, "result": {"message_id": number, "text": text}})

    def _fail(self, status: int, description: str) -> None:
        self.send_json(status, {"ok": False, "error_code": status, "description": description})


class TelegramBot(LoopbackHTTPServer):
    handler_class = _Handler
    token = "123456789:AAH-loopback_secret_token"

    def __init__(self, chats: tuple[str, ...] = ("-1001234567890",)) -> None:
        super().__init__()
        self.chats = set(chats)
        self._sent: list[Sent] = []
        self._failures: deque[_Failure] = deque()

    @property
    def api_url(self) -> str:
        return self.url

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)

    def rate_limit(self, retry_after: int, *, times: int = 1) -> None:
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
        with self._lock:
            self._failures.append(_Failure(429, body, times))

    def fail(self, status: int, description: str, *, times: int = 1) -> None:
        body = {"ok": False, "error_code": status, "description": description}
        with self._lock:
            self._failures.append(_Failure(status, body, times))

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return take_scripted(self._failures)
