"""Fetches go through the proxy the environment names (HTTP_PROXY, NO_PROXY), as an operator
behind one expects; links found on pages never do (the address guard would judge the
proxy, not the link's host)."""

from __future__ import annotations

import asyncio

import pytest
from loopback import FeedServer

from core.config import CollectConfig
from sources import netguard
from sources.http import FetchError, FetchLimits, HttpClients, HttpResponse, fetch

CONFIG = CollectConfig(timeout=5, connect_timeout=2)
# Resolvable only through the proxy: the loopback server stands in for it.
FEED = "http://feeds.example.invalid/news.xml"


def get(clients: HttpClients, url: str) -> HttpResponse:
    async def run() -> HttpResponse:
        async with clients:
            return await fetch(clients, url, FetchLimits.from_config(CONFIG))

    return asyncio.run(run())


@pytest.fixture
def proxy(feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> FeedServer:
    feed_server.add(
        "/news.xml", "<rss version='2.0'><channel><title>Via proxy</title></channel></rss>"
    )
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", feed_server.url_for(""))
    return feed_server


def test_a_feed_is_fetched_through_the_environments_proxy(proxy: FeedServer) -> None:
    response = get(HttpClients(CONFIG), FEED)
    assert response.status == 200 and b"Via proxy" in response.body
    assert proxy.hits("/news.xml") == 1


def test_no_proxy_sends_a_host_direct(proxy: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "feeds.example.invalid")
    with pytest.raises(FetchError, match=r"cannot resolve host feeds\.example\.invalid"):
        get(HttpClients(CONFIG), FEED)
    assert proxy.hits("/news.xml") == 0


def test_links_found_on_pages_never_go_through_the_proxy(proxy: FeedServer) -> None:
    clients = netguard.links_clients(CONFIG, policy=lambda address: True)
    assert clients is not None
    with pytest.raises(FetchError, match=r"cannot resolve host feeds\.example\.invalid"):
        get(clients, FEED)
    assert proxy.hits("/news.xml") == 0
