"""FeedServer: a threaded HTTP/1.1 origin serving feeds, pages and scripted faults."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import itertools
import mimetypes
import socket
import struct
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from ._http import LoopbackHandler, LoopbackHTTPServer, take_scripted

RSS_TYPE = "application/rss+xml; charset=utf-8"

Headers = Mapping[str, str]

DEFAULT_HTML = (
    b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Not a feed</title></head>"
    b"<body><h1>Welcome</h1><p>This is an HTML page, not a feed.</p></body></html>"
)


def http_date(when: datetime | float) -> str:
    """RFC 9110 IMF-fixdate, e.g. 'Wed, 05 Apr 2022 10:00:00 GMT'."""
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(when, UTC)
    return email.utils.format_datetime(when.astimezone(UTC), usegmt=True)


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sniff_content_type(body: bytes, filename: str = "") -> str:
    """The Content-Type a typical server would send for a feed file."""
    head = body[:2048].lower()
    if b"<rss" in head:
        return "application/rss+xml"
    if b"<feed" in head:
        return "application/atom+xml"
    if b"<rdf:rdf" in head:
        return "application/rdf+xml"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


@lru_cache(maxsize=8)
def _bomb_parts(inflated_mib: int) -> tuple[bytes, bytes, bytes]:
    """(gzip header, one deflate block that inflates to 1 MiB of zeros, trailer).

    A full flush resets the compressor, so every 1 MiB block compresses to identical
    bytes; repeating the block makes a valid single-member gzip stream of any size
    without compressing hundreds of MB."""
    mib = bytes(1 << 20)
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    co.compress(mib)
    co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(mib) + co.flush(zlib.Z_FULL_FLUSH)
    final = co.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(mib, crc)
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    trailer = final + struct.pack("<II", crc, (inflated_mib << 20) & 0xFFFFFFFF)
    return header, block, trailer


def gzip_bomb(inflated_mib: int = 256) -> Iterator[bytes]:
    """Yield a gzip stream (~1 KiB per MiB) that inflates to `inflated_mib` MiB."""
    header, block, trailer = _bomb_parts(inflated_mib)
    yield header
    for _ in range(inflated_mib):
        yield block
    yield trailer


def gzip_bomb_size(inflated_mib: int = 256) -> int:
    header, block, trailer = _bomb_parts(inflated_mib)
    return len(header) + len(block) * inflated_mib + len(trailer)


# --- routes -------------------------------------------------------------------------------


@dataclass
class Route:
    delay: float = field(default=0.0, kw_only=True)

    def serve(self, h: _FeedHandler) -> None:
        raise NotImplementedError


@dataclass
class StaticRoute(Route):
    body: bytes
    content_type: str | None
    headers: Headers
    etag: str | None
    last_modified: str | None
    gzip: bool
    status: int = 200
    _gz: bytes | None = field(default=None, repr=False)

    def _not_modified(self, h: _FeedHandler) -> bool:
        if h.owner.ignore_conditional:
            return False
        inm = h.headers.get("If-None-Match")
        if inm is not None:
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2); weak comparison.
            if self.etag is None:
                return False
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or self.etag.removeprefix("W/") in tags
        ims = h.headers.get("If-Modified-Since")
        if ims is None or self.last_modified is None:
            return False
        since, modified = _parse_http_date(ims), _parse_http_date(self.last_modified)
        return since is not None and modified is not None and modified <= since

    def serve(self, h: _FeedHandler) -> None:
        validators = []
        if self.etag is not None:
            validators.append(("ETag", self.etag))
        if self.last_modified is not None:
            validators.append(("Last-Modified", self.last_modified))
        if self.status == 200 and self._not_modified(h):
            h.send_response(304)
            for name, value in [*validators, *self.headers.items()]:
                h.send_header(name, value)
            h.end_headers()
            return
        body = self.body
        extra = [*validators, *self.headers.items()]
        if self.gzip:
            extra.append(("Vary", "Accept-Encoding"))
            if "gzip" in h.headers.get("Accept-Encoding", "").lower():
                if self._gz is None:
                    self._gz = gzip.compress(body, mtime=0)
                body = self._gz
                extra.append(("Content-Encoding", "gzip"))
        h.send_bytes(self.status, body, self.content_type, extra)


@dataclass
class StatusRoute(Route):
    status: int
    body: bytes
    content_type: str | None
    headers: Headers

    def serve(self, h: _FeedHandler) -> None:
        h.send_bytes(self.status, self.body, self.content_type, self.headers)


@dataclass
class GzipBombRoute(Route):
    inflated_mib: int
    content_type: str

    def serve(self, h: _FeedHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", self.content_type)
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(gzip_bomb_size(self.inflated_mib)))
        h.end_headers()
        if h.command != "HEAD":
            h.write_until_gone(gzip_bomb(self.inflated_mib))


@dataclass
class HugeRoute(Route):
    size: int
    content_type: str
    chunked: bool

    def _chunks(self) -> Iterator[bytes]:
        prefix = b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n<!--'
        filler = b"x" * 65536
        yield prefix
        left = self.size - len(prefix)
        while left > 0:
            piece = filler[:left]
            left -= len(piece)
            yield piece

    def serve(self, h: _FeedHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", self.content_type)
        if self.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(self.size))
        h.end_headers()
        if h.command == "HEAD":
            return
        if self.chunked:
            framed = (b"%x\r\n%s\r\n" % (len(c), c) for c in self._chunks())
            h.write_until_gone(itertools.chain(framed, [b"0\r\n\r\n"]))
        else:
            h.write_until_gone(self._chunks())


@dataclass
class TrickleRoute(Route):
    interval: float
    max_seconds: float
    stage: str  # "body": headers at once, then body bytes; "headers": the status line trickles
    content_type: str

    def serve(self, h: _FeedHandler) -> None:
        h.close_connection = True
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\nConnection: close\r\n\r\n"
        ).encode()
        body = itertools.chain(
            b'<?xml version="1.0"?><rss version="2.0"><channel>', itertools.repeat(32)
        )
        if self.stage == "headers":
            stream = iter(head)
        else:
            h.wfile.write(head)
            stream = iter(body)
        deadline = time.monotonic() + self.max_seconds
        for byte in stream:
            if time.monotonic() >= deadline:
                return
            try:
                h.wfile.write(bytes([byte]))
            except OSError:
                return  # the client gave up: that is the point
            if h.sleep(self.interval):
                return


@dataclass
class DropRoute(Route):
    body: bytes
    after: int
    content_type: str
    reset: bool

    def serve(self, h: _FeedHandler) -> None:
        h.close_connection = True
        h.send_response(200)
        h.send_header("Content-Type", self.content_type)
        h.send_header("Content-Length", str(len(self.body)))
        h.end_headers()
        try:
            h.wfile.write(self.body[: self.after])
            if self.reset:
                # linger 0 turns close() into a TCP RST
                h.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                h.connection.close()
            else:
                h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@dataclass
class _OneShot:
    route: Route
    remaining: int


# --- server --------------------------------------------------------------------------------


class _FeedHandler(LoopbackHandler):
    owner: FeedServer

    def do_GET(self) -> None:
        self.record()
        server: FeedServer = self.owner
        parts = urlsplit(self.path)
        key = f"{parts.path}?{parts.query}" if parts.query else parts.path
        route, counted_as = server._take(key, parts.path)
        server._count(counted_as)
        if self.sleep(server.latency + (route.delay if route else 0.0)):
            self.close_connection = True
            return
        if route is None:
            self.send_bytes(404, b"Not Found\n")
            return
        route.serve(self)

    do_HEAD = do_GET

    def write_until_gone(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if self.owner._stopping.is_set():
                    break
                self.wfile.write(chunk)
        except OSError:
            self.close_connection = True


class FeedServer(LoopbackHTTPServer):
    """Serve registered routes over HTTP/1.1 on 127.0.0.1:<ephemeral>.

    Every ``add*`` method takes ``times``: None (default) installs the route as the
    path's standing response; an int queues it as a one-shot override used for the next
    ``times`` requests to that path (one-shots are served FIFO before the standing route).
    Paths may include a query string ("/feed?x=1"), which is matched before the bare path.
    """

    handler_class = _FeedHandler

    def __init__(self, latency: float = 0.0, *, ignore_conditional: bool = False) -> None:
        super().__init__()
        self.latency = latency
        self.ignore_conditional = ignore_conditional
        self._routes: dict[str, Route] = {}
        self._oneshots: dict[str, deque[_OneShot]] = {}
        self._hits: Counter[str] = Counter()
        self._mtimes: dict[str, datetime] = {}

    # routing ----------------------------------------------------------------------------

    def _install(self, path: str, route: Route, times: int | None) -> str:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        with self._lock:
            if times is None:
                self._routes[path] = route
            else:
                self._oneshots.setdefault(path, deque()).append(_OneShot(route, times))
        return self.url_for(path) if self._httpd else path

    def _take(self, key: str, bare: str) -> tuple[Route | None, str]:
        with self._lock:
            for candidate in (key, bare):
                queue = self._oneshots.get(candidate)
                if queue and (slot := take_scripted(queue)) is not None:
                    return slot.route, candidate
                if candidate in self._routes:
                    return self._routes[candidate], candidate
            return None, key

    def _count(self, path: str) -> None:
        with self._lock:
            self._hits[path] += 1

    def hits(self, path: str) -> int:
        """Requests (GET/HEAD) received for `path` (as registered, query included)."""
        with self._lock:
            return self._hits[path]

    @property
    def hit_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._hits)

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)
            self._oneshots.pop(path, None)

    # content ----------------------------------------------------------------------------

    def add(
        self,
        path: str,
        body: bytes | str,
        content_type: str | None = RSS_TYPE,
        headers: Headers | None = None,
        *,
        etag: str | bool | None = True,
        last_modified: datetime | str | bool | None = True,
        gzip: bool = False,
        status: int = 200,
        delay: float = 0.0,
        times: int | None = None,
    ) -> str:
        """Serve `body` at `path`; returns the absolute URL (when started).

        etag: True = strong ETag from the body hash, str = used verbatim (quote it),
        None/False = no ETag. last_modified: True = now (strictly increasing per path, so
        a changed body never shares a second with its predecessor), datetime/str = given,
        None/False = none. Conditional GET answers 304 unless ``ignore_conditional``.
        gzip=True: gzip the body when the request's Accept-Encoding allows it.
        A str body is UTF-8 encoded; pass bytes to serve other encodings (wrong charset
        tests: ``content_type="text/xml"`` or a lying ``charset=``)."""
        data = body.encode() if isinstance(body, str) else body
        if etag is True:
            etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        lm: str | None
        if last_modified is True:
            now = datetime.now(UTC).replace(microsecond=0)
            with self._lock:
                previous = self._mtimes.get(path)
                if previous is not None and now <= previous:
                    now = previous + timedelta(seconds=1)
                self._mtimes[path] = now
            lm = http_date(now)
        elif isinstance(last_modified, datetime):
            lm = http_date(last_modified)
        else:
            lm = last_modified or None
        route = StaticRoute(
            body=data,
            content_type=content_type,
            headers=dict(headers or {}),
            etag=etag or None,
            last_modified=lm,
            gzip=gzip,
            status=status,
            delay=delay,
        )
        return self._install(path, route, times)

    def add_file(
        self,
        path: str,
        file: str | Path,
        content_type: str | None = None,
        **kwargs: object,
    ) -> str:
        """Serve a file's bytes; Content-Type sniffed (rss/atom/rdf) unless given."""
        data = Path(file).read_bytes()
        return self.add(
            path,
            data,
            content_type or sniff_content_type(data, str(file)),
            **kwargs,  # type: ignore[arg-type]
        )

    def add_directory(self, directory: str | Path, prefix: str = "/") -> dict[str, str]:
        """Serve every file under `directory` at prefix + relative path.

        Returns {relative posix path: URL (or path if not started)}."""
        root = Path(directory)
        served: dict[str, str] = {}
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = file.relative_to(root).as_posix()
            served[rel] = self.add_file(prefix.rstrip("/") + "/" + rel, file)
        return served

    def add_html(self, path: str, html: bytes | str = DEFAULT_HTML, **kwargs: object) -> str:
        return self.add(path, html, "text/html; charset=utf-8", **kwargs)  # type: ignore[arg-type]

    def add_empty(self, path: str, content_type: str = RSS_TYPE, **kwargs: object) -> str:
        return self.add(path, b"", content_type, etag=None, last_modified=None, **kwargs)  # type: ignore[arg-type]

    # faults -----------------------------------------------------------------------------

    def add_status(
        self,
        path: str,
        status: int,
        *,
        retry_after: float | datetime | str | None = None,
        headers: Headers | None = None,
        body: bytes | str = b"",
        content_type: str | None = "text/plain; charset=utf-8",
        delay: float = 0.0,
        times: int | None = None,
    ) -> str:
        """Answer `status` (429, 503, 410, 500, ...). retry_after: seconds (int/float,
        sent as an integer), a datetime (sent as an HTTP-date) or a raw header string."""
        hdrs = dict(headers or {})
        if isinstance(retry_after, datetime):
            hdrs["Retry-After"] = http_date(retry_after)
        elif isinstance(retry_after, int | float):
            hdrs["Retry-After"] = str(int(retry_after))
        elif retry_after is not None:
            hdrs["Retry-After"] = retry_after
        data = body.encode() if isinstance(body, str) else body
        route = StatusRoute(status, data, content_type, hdrs, delay=delay)
        return self._install(path, route, times)

    def add_redirect(
        self,
        path: str,
        location: str,
        status: int = 302,
        *,
        absolute: bool = False,
        times: int | None = None,
    ) -> str:
        """Redirect to `location` (a path or a URL). absolute=True turns a path into a
        full URL on this server. A loop: add_redirect('/a','/b'); add_redirect('/b','/a')."""
        if absolute and location.startswith("/"):
            location = self.url_for(location)
        return self.add_status(path, status, headers={"Location": location}, times=times)

    def add_gzip_bomb(
        self,
        path: str,
        inflated_mib: int = 256,
        content_type: str = RSS_TYPE,
        *,
        times: int | None = None,
    ) -> str:
        """Content-Encoding: gzip body of ~1 KiB per MiB that inflates to `inflated_mib`
        MiB of NUL bytes (sent regardless of Accept-Encoding, with Content-Length)."""
        return self._install(path, GzipBombRoute(inflated_mib, content_type), times)

    def add_huge(
        self,
        path: str,
        size: int,
        content_type: str = RSS_TYPE,
        *,
        chunked: bool = False,
        times: int | None = None,
    ) -> str:
        """A `size`-byte body (an unterminated XML comment), streamed lazily. chunked=True
        hides the length (Transfer-Encoding: chunked) so only a running count catches it."""
        return self._install(path, HugeRoute(size, content_type, chunked), times)

    def add_trickle(
        self,
        path: str,
        interval: float = 0.1,
        *,
        max_seconds: float = 30.0,
        stage: str = "body",
        content_type: str = RSS_TYPE,
        times: int | None = None,
    ) -> str:
        """Send one byte every `interval` s until the client disconnects, the server
        stops or `max_seconds` pass. stage="body": headers at once, then the body
        trickles (defeats per-read timeouts; needs a total deadline). stage="headers":
        the status line itself trickles."""
        if stage not in ("body", "headers"):
            raise ValueError("stage must be 'body' or 'headers'")
        return self._install(path, TrickleRoute(interval, max_seconds, stage, content_type), times)

    def add_drop(
        self,
        path: str,
        body: bytes | str,
        after: int | None = None,
        *,
        reset: bool = False,
        content_type: str = RSS_TYPE,
        times: int | None = None,
    ) -> str:
        """Announce Content-Length of the full body, send the first `after` bytes (default
        half), then close the connection (FIN; reset=True sends a TCP RST instead)."""
        data = body.encode() if isinstance(body, str) else body
        cut = len(data) // 2 if after is None else after
        return self._install(path, DropRoute(data, cut, content_type, reset), times)


def serve_directory(
    directory: str | Path, latency: float = 0.0
) -> tuple[FeedServer, dict[str, str]]:
    """Start a FeedServer serving `directory`; returns (server, {relpath: url}).
    The caller stops the server (or uses it as a context manager)."""
    server = FeedServer(latency=latency).start()
    return server, server.add_directory(directory)


__all__ = [
    "RSS_TYPE",
    "FeedServer",
    "gzip_bomb",
    "gzip_bomb_size",
    "http_date",
    "serve_directory",
    "sniff_content_type",
]
