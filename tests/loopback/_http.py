"""Shared plumbing for the loopback HTTP servers: a threaded HTTP/1.1 server on an
ephemeral 127.0.0.1 port that can be stopped promptly, and a request record."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from .lifecycle import Running

HOST = "127.0.0.1"


class _Scripted(Protocol):
    remaining: int


_Entry = TypeVar("_Entry", bound=_Scripted)


def take_scripted(queue: deque[_Entry]) -> _Entry | None:
    """The next scripted entry, each used for its `remaining` requests, or None when the
    script is used up. Callers hold their server's lock."""
    if not queue:
        return None
    entry = queue[0]
    entry.remaining -= 1
    if entry.remaining <= 0:
        queue.popleft()
    return entry


# Cap on request bodies we are willing to buffer; a test never needs more.
MAX_REQUEST_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. Header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query)

    def json(self) -> Any:
        return json.loads(self.body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Large backlog so ~100+ simultaneous connects (the feed benchmark) never see a refusal.
    request_queue_size = 1024

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: LoopbackHTTPServer) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((HOST, 0), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (killed by a crash test, timed out) is part of
        # the tests, not an error worth a traceback on stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        # Idle keep-alive connections would otherwise keep serving after stop().
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class LoopbackHandler(BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, quiet, with small response helpers."""

    protocol_version = "HTTP/1.1"
    server_version = "loopback/1.0"
    # Idle keep-alive connections are dropped after this long (seconds).
    timeout = 30
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per keep-alive request).
    disable_nagle_algorithm = True
    server: _HTTPServer

    @property
    def owner(self) -> Any:
        return self.server.owner

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(1024)
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def record(self, body: bytes = b"") -> RecordedRequest:
        parts = urlsplit(self.path)
        rec = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        self.owner._record(rec)
        return rec

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        head_only: bool = False,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            self.send_header(name, value)
        self.end_headers()
        if not head_only and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(
        self,
        status: int,
        obj: Any,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers)

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds` unless the server is stopping; True when it is stopping."""
        return seconds > 0 and self.owner._stopping.wait(seconds)


class LoopbackHTTPServer(Running):
    """Start/stop, URL and request-record machinery shared by the HTTP servers."""

    handler_class: ClassVar[type[LoopbackHandler]]
    # Set before start() to serve HTTPS with this server context (a self-signed cert's).
    tls: ssl.SSLContext | None = None

    def __init__(self) -> None:
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self.handler_class, self)
        if self.tls is not None:
            # Each accepted connection does its TLS handshake first (a failed one is dropped).
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            # Short poll interval so stop() returns quickly.
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Origin, no trailing slash: http://127.0.0.1:PORT (https with `tls`)"""
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)
