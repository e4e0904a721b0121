"""Keep links found on web pages away from private networks (SSRF protection).

A site page is written by someone else; the links on it are untrusted. Unless the operator
allows private networks, a discovered link is fetched only over http(s) to public
addresses. The check sits where the connection is made: every connection (the first
request and every redirect hop) resolves the host, refuses it unless every address is
public, and connects to an address it checked, so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot slip a private address through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from core.config import CollectConfig
from core.errors import SourceError
from sources import http

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Decides whether an address may be reached; `is_public_address` unless a test says otherwise.
AddressPolicy = Callable[[IPAddress], bool]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class BlockedAddress(SourceError):
    """A link leads to an address that is not fetched; the message names host and address."""


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address, with IPv4 inside IPv6 checked as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # ::ffff:10.0.0.1, 64:ff9b::a00:1 (NAT64), 2002:a00:1:: (6to4), Teredo and ::10.0.0.1
    # all reach an IPv4 host; judge that host.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 0xFFFF):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def resolve_allowed(
    host: str, port: int, policy: AddressPolicy, timeout: float | None = None
) -> list[str]:
    """The addresses of `host`; BlockedAddress unless every one passes `policy`.

    All of them must pass, not just the first: otherwise a name with one public and one
    private address would reach the private one whenever the first connection fails.
    """
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                timeout,
            )
        except TimeoutError:
            raise TimeoutError(f"timed out resolving {host}") from None
        addresses = _unique(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    refused = [address for address in addresses if not policy(address)]
    if refused:
        shown = ", ".join(str(address) for address in refused)
        named = "" if literal is not None else f"{host} resolves to "
        raise BlockedAddress(
            f"refused {named}{shown}: not a public address (links found on pages may only "
            "reach public addresses; collect.allow_private_networks lifts this)"
        )
    return [str(address) for address in addresses]


async def check_url(url: str, policy: AddressPolicy, timeout: float | None = None) -> None:
    """Refuse a link that is not http(s) or whose host is not allowed by `policy`.

    For links handed to a service that fetches them itself (Firecrawl); what that service
    does on redirects is beyond this check.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BlockedAddress(f"invalid link {url}: {error}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(f"refused {url}: only http and https links are followed")
    default = 443 if parts.scheme.lower() == "https" else 80
    try:
        await resolve_allowed(parts.hostname, port or default, policy, timeout)
    except TimeoutError as error:
        raise BlockedAddress(str(error)) from None
    except OSError as error:
        raise BlockedAddress(f"cannot resolve host {parts.hostname}: {error}") from None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, answering only addresses the policy allows: the connector
    connects to what it answers, so the address checked is the address reached."""

    def __init__(self, policy: AddressPolicy, timeout: float | None) -> None:
        self._policy = policy
        self._timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_allowed(host, port, self._policy, self._timeout)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def links_clients(
    config: CollectConfig, policy: AddressPolicy | None = None
) -> http.HttpClients | None:
    """Clients for discovered links that reach only allowed addresses, or None when the
    operator allows private networks (then the ordinary clients serve links too).

    Environment proxies are not used: through a proxy the address check would judge the
    proxy, not the link's host.
    """
    if config.allow_private_networks and policy is None:
        return None
    allowed = policy or is_public_address

    async def check_literal(url: str) -> None:
        # aiohttp connects to a literal address without asking the resolver.
        host = urlsplit(url).hostname or ""
        if _literal(host) is not None:
            await resolve_allowed(host, 0, allowed)

    return http.HttpClients(config, GuardedResolver(allowed, config.connect_timeout), check_literal)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))
