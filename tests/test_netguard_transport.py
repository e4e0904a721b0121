"""The guarded client for links found on pages connects only where the address policy
allows: its resolver answers only allowed addresses, and a literal address is checked
before the request (aiohttp connects to those without asking the resolver)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from loopback.feeds import FeedServer

from core.config import CollectConfig
from sources import netguard
from sources.http import FetchLimits, HttpResponse, fetch

CONFIG = CollectConfig(allow_private_networks=False, timeout=5)


def get(url: str, policy: netguard.AddressPolicy | None) -> HttpResponse:
    async def run() -> HttpResponse:
        clients = netguard.links_clients(CONFIG, policy)
        assert clients is not None
        async with clients:
            return await fetch(clients, url, FetchLimits.from_config(CONFIG))

    return asyncio.run(run())


def test_the_guarded_transport_refuses_a_private_address(feed_server: FeedServer) -> None:
    url = feed_server.add_html("/article", "<html><body>hello</body></html>")
    with pytest.raises(netguard.BlockedAddress, match="not a public address"):
        get(url, None)
    assert feed_server.hits("/article") == 0


def test_the_guarded_transport_connects_where_the_policy_allows(feed_server: FeedServer) -> None:
    url = feed_server.add_html("/article", "<html><body>hello</body></html>")

    def loopback_allowed(address: netguard.IPAddress) -> bool:
        return address == ipaddress.IPv4Address("127.0.0.1")

    response = get(url, loopback_allowed)
    assert response.status == 200 and b"hello" in response.body
    assert feed_server.hits("/article") == 1
