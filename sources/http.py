"""Fetch one URL with limits on everything, and say in plain words what went wrong.

Limits: connect, read (no byte for this long) and total timeouts; a body cap counted on the
decompressed bytes while they are decoded; a redirect cap with loop detection; the schemes
http, https and file (redirects only ever to http or https). Shared by feed and site sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

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


# Makes the transport of one origin's client from the shared TLS context and pool limits.
TransportFactory = Callable[[ssl.SSLContext, httpx.Limits], httpx.AsyncBaseTransport]

# Called with each URL before it is requested (the first and every redirect target);
# raise FetchError to refuse it.
HopCheck = Callable[[str], Awaitable[None]]


# Connections per pool. httpx's pool does work proportional to its connections squared on
# every request (~5 ms of CPU each with 64 open), so an origin that needs more connections
# gets several small pools instead of one large one.
POOL_SIZE = 8


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context, made when the first client is: loading its CA bundle
    costs 35-70 ms of CPU, a tenth of a cycle of 300 unchanged feeds, so not once per
    HttpClients (two a cycle) nor in a cycle that fetches nothing."""
    return httpx.create_ssl_context()


@dataclass
class _Pool:
    client: httpx.AsyncClient
    busy: int = 0  # requests in flight through it


class HttpClients:
    """Pooled HTTP clients for one collection cycle: small pools per origin, as many as the
    per-host cap needs, each request on the least busy one.

    All share one TLS context (tls_context). A `transport` factory replaces httpx's default
    transport (netguard's, for links found on pages).
    """

    def __init__(self, config: CollectConfig, transport: TransportFactory | None = None) -> None:
        self._config = config
        self._transport = transport
        self._pools: dict[tuple[str, str, int | None], list[_Pool]] = {}
        self._per_pool = min(config.per_host, POOL_SIZE)
        self._max_pools = -(-config.per_host // self._per_pool)

    @contextlib.contextmanager
    def lease(self, url: httpx.URL) -> Iterator[httpx.AsyncClient]:
        """A client for one request to `url`'s origin, held until its response is read."""
        pools = self._pools.setdefault((url.scheme, url.host, url.port), [])
        pool = min(pools, key=lambda candidate: candidate.busy, default=None)
        if pool is None or (pool.busy >= self._per_pool and len(pools) < self._max_pools):
            pool = _Pool(self._client(url.scheme))
            pools.append(pool)
        pool.busy += 1
        try:
            yield pool.client
        finally:
            pool.busy -= 1

    def _client(self, scheme: str) -> httpx.AsyncClient:
        config = self._config
        limits = httpx.Limits(
            max_connections=self._per_pool, max_keepalive_connections=self._per_pool
        )
        tls = tls_context()
        transport = self._transport(tls, limits) if self._transport else None
        return httpx.AsyncClient(
            transport=transport,
            # HTTP/2 is negotiated in the TLS handshake (ALPN), so only an https origin's
            # client may speak it; a plain-http one then never imports h2 (80 ms of CPU).
            http2=scheme == "https",
            verify=tls,
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.timeout,
            ),
            limits=limits,
            headers={"User-Agent": config.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        )

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for pools in self._pools.values():
            for pool in pools:
                await pool.client.aclose()
        self._pools.clear()


async def fetch(
    http: HttpClients,
    url: str,
    limits: FetchLimits,
    *,
    headers: Mapping[str, str] | None = None,
    check_hop: HopCheck | None = None,
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
            return await _follow(http, url, limits, request, check_hop)
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
    http: HttpClients,
    url: str,
    limits: FetchLimits,
    request: _Request,
    check_hop: HopCheck | None,
) -> HttpResponse:
    seen = {url}
    permanent = True
    current = url
    for hops in range(limits.max_redirects + 1):
        if check_hop:
            await check_hop(current)
        with _leased(http, current) as (client, target):
            response = await _send(client, target, current, request)
            try:
                result = await _answer(response, current, limits, request, permanent, hops)
            finally:
                await response.aclose()
        if isinstance(result, HttpResponse):
            return result
        if result in seen:
            raise FetchError(f"redirect loop: {current} leads back to {result}")
        permanent = permanent and response.status_code in _PERMANENT
        seen.add(result)
        current = result
    raise FetchError(f"more than {limits.max_redirects} redirects (the last to {current})")


@contextlib.contextmanager
def _leased(http: HttpClients, url: str) -> Iterator[tuple[httpx.AsyncClient, httpx.URL]]:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise FetchError(f"invalid URL {url}: {error}") from None
    with http.lease(target) as client:
        yield client, target


async def _answer(
    response: httpx.Response,
    current: str,
    limits: FetchLimits,
    request: _Request,
    permanent: bool,
    hops: int,
) -> HttpResponse | str:
    """The response, or the http(s) address it redirects to."""
    location = response.headers.get("location")
    if request.error_body and response.status_code >= 400:
        body = await _read_body(response, _DISCARDED_BODY_LIMIT, current)
        return _response(response, current, body, None)
    if not 200 <= response.status_code < 300:
        await _discard_body(response)
    if response.status_code in _REDIRECTS and location:
        target = str(response.url.join(location.strip()))
        if urlsplit(target).scheme.lower() not in _WEB_SCHEMES:
            raise FetchError(f"redirected to {target}, which is not an http(s) address")
        return target
    body = b""
    if 200 <= response.status_code < 300:
        body = await _read_body(response, limits.max_bytes, current)
    return _response(response, current, body, current if permanent and hops else None)


def _response(
    response: httpx.Response, url: str, body: bytes, permanent_url: str | None
) -> HttpResponse:
    return HttpResponse(
        status=response.status_code,
        reason=response.reason_phrase,
        headers={name.lower(): value for name, value in response.headers.items()},
        url=url,
        body=body,
        permanent_url=permanent_url,
    )


async def _send(
    client: httpx.AsyncClient, target: httpx.URL, url: str, request: _Request
) -> httpx.Response:
    try:
        method = "POST" if request.form is not None else "GET"
        built = client.build_request(method, target, headers=request.headers, data=request.form)
        return await client.send(built, stream=True)
    except httpx.InvalidURL as error:
        raise FetchError(f"invalid URL {url}: {error}") from None
    except httpx.HTTPError as error:
        raise FetchError(describe(error, url)) from None


async def _discard_body(response: httpx.Response) -> None:
    """Read a short unwanted body (a 304's, a redirect's), so the connection can be reused."""
    size = 0
    try:
        async for raw in response.aiter_raw():
            size += len(raw)
            if size > _DISCARDED_BODY_LIMIT:
                return  # not worth reading: the connection is closed instead
    except httpx.HTTPError:
        return


async def _read_body(response: httpx.Response, limit: int, url: str) -> bytes:
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
        async for raw in response.aiter_raw():
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
    except httpx.HTTPError as error:
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


def describe(error: httpx.HTTPError, url: str) -> str:
    """An httpx error in the words an operator needs: which host, and what failed."""
    parts = urlsplit(url)
    host = parts.hostname or url
    where = f"{host}:{parts.port}" if parts.port else host
    causes = _causes(error)
    if isinstance(error, httpx.ConnectTimeout):
        return f"timed out connecting to {where}"
    if isinstance(error, httpx.ReadTimeout):
        return f"{where} stopped sending data (read timed out)"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out talking to {where}"
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {host}"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate of {host} is not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error with {host}: {cause.reason or cause}"
        if isinstance(cause, ConnectionResetError):
            return f"{where} reset the connection"
    if isinstance(error, httpx.RemoteProtocolError) and "peer closed" in str(error):
        return f"{where} closed the connection before the whole response arrived"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"{where} broke the HTTP protocol: {error}"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect to {where}: {error}"
    if isinstance(error, httpx.UnsupportedProtocol):
        return f"invalid URL {url}: {error}"
    return f"cannot fetch {url}: {error or type(error).__name__}"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
