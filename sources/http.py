"""Fetch one URL with limits on everything, and say in plain words what went wrong.

Limits: connect, read (no byte for this long) and total timeouts; a body cap counted on the
decompressed bytes while they are decoded; a redirect cap with loop detection; the schemes
http, https and file (redirects only ever to http or https). Shared by feed and site sources.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from core.config import CollectConfig
from core.errors import SourceError
from sources.decompress import ACCEPT_ENCODING, DecodeError, decoder

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_DISCARDED_BODY_LIMIT = 64 * 1024
_WEB_SCHEMES = ("http", "https")


class FetchError(SourceError):
    """A fetch that produced no usable response; the message is for the operator."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_bytes: int
    max_redirects: int

    @classmethod
    def from_config(cls, config: CollectConfig) -> FetchLimits:
        return cls(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            total_timeout=config.timeout,
            max_bytes=config.max_bytes,
            max_redirects=config.max_redirects,
        )


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: Mapping[str, str]  # names lower-cased
    url: str  # after redirects
    body: bytes  # decoded; empty unless the status is 2xx
    permanent_url: str | None  # set when every redirect on the way was permanent (301/308)


# Called with each URL before it is requested (the first and every redirect target);
# raise to refuse it.
HopCheck = Callable[[str], Awaitable[None]]


class HttpClients:
    """The pooled HTTP client of one collection cycle: one aiohttp session, at most
    `per_host` connections to any one origin.

    aiohttp, not httpx: 300 conditional GETs answered 304 cost 0.08 CPU-s through aiohttp
    and 0.3-0.4 through httpx even with small pools (httpcore scans every connection of its
    pool on each request), and 3 CPU-s with one pool of 64 to one origin. Only HTTP/1.1
    (aiohttp has no HTTP/2); the limits stay ours: timeouts per phase, redirects followed
    here, bodies decoded here under the size cap (sources.decompress). TLS is verified
    against the system's CA store (SSL_CERT_FILE and SSL_CERT_DIR honoured) with the
    context aiohttp makes at import: another one would cost 30 ms of CPU to load.

    `resolver` and `check_hop` guard links found on pages (sources.netguard): the resolver
    answers only allowed addresses for a name, and the check refuses a literal address
    (aiohttp connects to those without asking the resolver).
    """

    def __init__(
        self,
        config: CollectConfig,
        resolver: AbstractResolver | None = None,
        check_hop: HopCheck | None = None,
    ) -> None:
        self._config = config
        self._resolver = resolver
        self.check_hop = check_hop
        self._session: aiohttp.ClientSession | None = None
        # HTTP(S)_PROXY, read once: aiohttp's trust_env would read the environment and
        # ~/.netrc in a thread on every request. Not for guarded clients: through a proxy
        # the guard would judge the proxy, not the link's host.
        guarded = resolver is not None or check_hop is not None
        self._proxies = {} if guarded else urllib.request.getproxies()

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use: a cycle of site tools that fetch nothing opens no session."""
        if self._session is None:
            config = self._config
            connector = aiohttp.TCPConnector(
                limit=0,  # the cycle's caps (sources.collect) bound requests in flight
                limit_per_host=config.per_host,
                resolver=self._resolver,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None,  # fetch's asyncio.timeout bounds the whole fetch
                    connect=config.timeout,  # a free connection, then connecting
                    sock_connect=config.connect_timeout,
                    sock_read=config.read_timeout,
                ),
                headers={"User-Agent": config.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
                auto_decompress=False,  # decoded under the size cap in _read_body
            )
        return self._session

    def proxy(self, url: str) -> str | None:
        """The environment's proxy for `url`, unless NO_PROXY exempts its host."""
        if not self._proxies:
            return None
        parts = urlsplit(url)
        if urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        return self._proxies.get(parts.scheme.lower())

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def fetch(
    http: HttpClients,
    url: str,
    limits: FetchLimits,
    *,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    error_body: bool = False,
) -> HttpResponse:
    """GET `url` within `limits` (POST `form` when given). Any status is returned;
    FetchError when there is none. With `error_body`, a non-2xx answer keeps its body
    (up to 64 KiB): APIs explain their refusals there."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return _read_file(url, limits.max_bytes)
    if scheme not in _WEB_SCHEMES:
        raise FetchError(f"unsupported URL scheme {scheme or '(none)'!r}: use http, https or file")
    try:
        async with asyncio.timeout(limits.total_timeout):
            request = _Request(dict(headers or {}), form, error_body)
            return await _follow(http, url, limits, request)
    except TimeoutError:
        raise FetchError(
            f"gave up after {limits.total_timeout:g} s: the server was too slow to send it all"
        ) from None


@dataclass(frozen=True)
class _Request:
    headers: dict[str, str]
    form: Mapping[str, str] | None
    error_body: bool


async def _follow(
    http: HttpClients, url: str, limits: FetchLimits, request: _Request
) -> HttpResponse:
    seen = {url}
    permanent = True
    current = url
    for hops in range(limits.max_redirects + 1):
        if http.check_hop:
            await http.check_hop(current)
        response = await _send(http, current, request)
        try:
            result = await _answer(response, current, limits, request, permanent, hops)
        finally:
            response.close()  # after a whole body read, the connection is back in the pool
        if isinstance(result, HttpResponse):
            return result
        if result in seen:
            raise FetchError(f"redirect loop: {current} leads back to {result}")
        permanent = permanent and response.status in _PERMANENT
        seen.add(result)
        current = result
    raise FetchError(f"more than {limits.max_redirects} redirects (the last to {current})")


async def _answer(
    response: aiohttp.ClientResponse,
    current: str,
    limits: FetchLimits,
    request: _Request,
    permanent: bool,
    hops: int,
) -> HttpResponse | str:
    """The response, or the http(s) address it redirects to."""
    location = response.headers.get("location")
    if request.error_body and response.status >= 400:
        body = await _read_body(response, _DISCARDED_BODY_LIMIT, current)
        return _response(response, current, body, None)
    if not 200 <= response.status < 300:
        await _discard_body(response)
    if response.status in _REDIRECTS and location:
        target = urljoin(current, location.strip())
        if urlsplit(target).scheme.lower() not in _WEB_SCHEMES:
            raise FetchError(f"redirected to {target}, which is not an http(s) address")
        return target
    body = b""
    if 200 <= response.status < 300:
        body = await _read_body(response, limits.max_bytes, current)
    return _response(response, current, body, current if permanent and hops else None)


def _response(
    response: aiohttp.ClientResponse, url: str, body: bytes, permanent_url: str | None
) -> HttpResponse:
    return HttpResponse(
        status=response.status,
        reason=response.reason or "",
        headers={name.lower(): value for name, value in response.headers.items()},
        url=url,
        body=body,
        permanent_url=permanent_url,
    )


async def _send(http: HttpClients, url: str, request: _Request) -> aiohttp.ClientResponse:
    try:
        return await http.session.request(
            "POST" if request.form is not None else "GET",
            url,
            headers=request.headers,
            data=request.form,
            allow_redirects=False,
            proxy=http.proxy(url),
        )
    except (aiohttp.InvalidURL, ValueError) as error:
        raise FetchError(f"invalid URL {url}: {error}") from None
    except aiohttp.ClientError as error:
        raise FetchError(describe(error, url)) from None


async def _discard_body(response: aiohttp.ClientResponse) -> None:
    """Read a short unwanted body (a 304's, a redirect's), so the connection can be reused."""
    size = 0
    try:
        async for raw in response.content.iter_any():
            size += len(raw)
            if size > _DISCARDED_BODY_LIMIT:
                return  # not worth reading: the connection is closed instead
    except aiohttp.ClientError:
        return


async def _read_body(response: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    try:
        decode = decoder(encoding)
    except DecodeError as error:
        raise FetchError(str(error)) from None
    too_large = f"the response is larger than {limit:,} bytes"
    compressed = encoding not in ("", "identity")
    if compressed:
        too_large += " once decompressed"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and not compressed and int(declared) > limit:
        raise FetchError(too_large)
    parts: list[bytes] = []
    size = 0
    try:
        async for raw in response.content.iter_any():
            for piece in decode.decode(raw):
                size += len(piece)
                if size > limit:
                    raise FetchError(too_large)
                parts.append(piece)
        for piece in decode.flush():
            size += len(piece)
            if size > limit:
                raise FetchError(too_large)
            parts.append(piece)
    except DecodeError as error:
        raise FetchError(f"the response is not valid {encoding} data: {error}") from None
    except aiohttp.ClientError as error:
        raise FetchError(describe(error, url)) from None
    return b"".join(parts)


def _read_file(url: str, limit: int) -> HttpResponse:
    path = Path(unquote(urlsplit(url).path))
    try:
        with path.open("rb") as handle:
            body = handle.read(limit + 1)
    except OSError as error:
        raise FetchError(f"cannot read {path}: {error.strerror or error}") from None
    if len(body) > limit:
        raise FetchError(f"{path} is larger than {limit:,} bytes")
    return HttpResponse(status=200, reason="OK", headers={}, url=url, body=body, permanent_url=None)


def describe(error: aiohttp.ClientError, url: str) -> str:
    """An aiohttp error in the words an operator needs: which host, and what failed."""
    parts = urlsplit(url)
    host = parts.hostname or url
    where = f"{host}:{parts.port}" if parts.port else host
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return f"timed out connecting to {where}"
    if isinstance(error, aiohttp.SocketTimeoutError):
        return f"{where} stopped sending data (read timed out)"
    if isinstance(error, aiohttp.ServerTimeoutError):
        return f"timed out talking to {where}"
    for cause in _causes(error):
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {host}"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(cause, aiohttp.ClientSSLError):
            continue  # an ssl.SSLError in name only: the one it wraps follows
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate of {host} is not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error with {host}: {cause.reason or cause}"
        if isinstance(cause, ConnectionResetError):
            return f"{where} reset the connection"
    if isinstance(error, aiohttp.ServerDisconnectedError) or (
        isinstance(error, aiohttp.ClientPayloadError) and "not completed" in str(error)
    ):
        return f"{where} closed the connection before the whole response arrived"
    if isinstance(error, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return f"{where} broke the HTTP protocol: {getattr(error, 'message', error)}"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {where}: {error.os_error.strerror or error.os_error}"
    return f"cannot fetch {url}: {error or type(error).__name__}"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return chain
