"""Site sources: new articles linked from a watched page become items, through the built-in
extractor or the real firecrawl-py client, with discovered links kept off private networks."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopback import FeedServer, FirecrawlServer, SilentServer, closed_port

from core.config import CollectConfig, Config, parse_config
from core.items import FetchOutcome, FetchRequest
from core.store import Store
from daemon.cli import main
from daemon.runner import Report, Runner
from sources import netguard
from sources.context import FetchContext, site_tools
from sources.firecrawl import markdown_to_text
from sources.http import FetchLimits, HttpClients
from sources.netguard import BlockedAddress, IPAddress
from sources.sites import fetch_site
from sources.workers import FeedParser

PARAGRAPHS = (
    "The city council voted on Tuesday to approve the new budget after a long debate "
    "that lasted well into the evening and drew a large crowd of residents.",
    "Supporters said the plan would fund more buses and repair roads across the district, "
    "while critics warned that the costs had been underestimated by a wide margin.",
)

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<link>{home}</link><description>d</description>
<item><title>Wire story</title><link>{link}</link><guid>w1</guid>
<description>A story from the wire about something that happened today.</description></item>
</channel></rss>"""


def article_html(title: str, extra: str = "") -> str:
    body = "".join(f"<p>{p} {extra}</p>" for p in PARAGRAPHS)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title} | Example News</title>"
        "<meta property='article:published_time' content='2024-05-01T10:00:00+00:00'></head>"
        "<body><header><nav><a href='/'>Home</a> <a href='/about'>About</a></nav></header>"
        f"<article><h1>{title}</h1>{body}</article><footer>Example News</footer></body></html>"
    )


def index_html(links: dict[str, str], feed: str | None = None) -> str:
    alternate = (
        f"<link rel='alternate' type='application/rss+xml' title='Example feed' href='{feed}'>"
        if feed
        else ""
    )
    items = "".join(f"<li><a href='{href}'>{text}</a></li>" for href, text in links.items())
    return (
        f"<!DOCTYPE html><html><head><title>Blog</title>{alternate}</head><body>"
        "<nav><a href='/'>Home</a> <a href='/about'>About us</a></nav>"
        f"<main><h1>Latest posts</h1><ul>{items}</ul></main></body></html>"
    )


def make_config(
    tmp_path: Path,
    sources: str,
    *,
    allow_private: bool = True,
    firecrawl: str = "",
    collect: str = "",
) -> Config:
    text = f"""
storage: {{path: {tmp_path / "tf.db"}}}
collect: {{allow_private_networks: {str(allow_private).lower()}, timeout: 5, {collect}}}
{firecrawl}
sources:
{sources}
"""
    return parse_config(text, "test.yaml", env={})


def collect_once(config: Config) -> tuple[Report, Store]:
    store = Store.open(config.storage.database)
    report = Runner(config, store).collect(due_only=False)
    return report, store


def stored(store: Store, source: str) -> dict[str, tuple[str, str]]:
    rows = store.db.execute(
        "SELECT i.url, i.title, i.text FROM items i JOIN item_sources s ON s.item_id = i.id "
        "WHERE s.source = ?",
        [source],
    ).fetchall()
    return {url: (title, text) for url, title, text in rows}


# --- built-in -------------------------------------------------------------------------------


def test_built_in_first_poll_stores_articles_and_the_next_poll_only_new_ones(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    links = {
        "/blog/2024/05/council-approves-budget": "Council approves budget",
        "/blog/2024/05/new-bus-routes-announced": "New bus routes",
    }
    for path, title in links.items():
        feed_server.add_html(path, article_html(title))
    index = feed_server.add_html("/blog", index_html(links))
    config = make_config(tmp_path, f"  - {{name: blog, kind: site, url: '{index}'}}")

    report, store = collect_once(config)
    items = stored(store, "blog")
    assert report.sources_ok == 1 and report.new_items == 2, report.errors
    url = feed_server.url_for("/blog/2024/05/council-approves-budget")
    title, text = items[url]
    assert title == "Council approves budget"
    assert "city council voted on Tuesday" in text and "<p>" not in text

    links["/blog/2024/05/library-opens-late"] = "Library opens late"
    feed_server.add_html("/blog/2024/05/library-opens-late", article_html("Library opens late"))
    feed_server.add_html("/blog", index_html(links))
    report = Runner(config, store).collect(due_only=False)
    assert report.new_items == 1, report.errors
    assert "Library opens late" in {title for title, _ in stored(store, "blog").values()}
    # Articles seen on the first poll are not fetched again.
    assert feed_server.hits("/blog/2024/05/council-approves-budget") == 1
    assert feed_server.hits("/blog/2024/05/library-opens-late") == 1

    # An unchanged page (304) costs no article fetches at all.
    report = Runner(config, store).collect(due_only=False)
    assert report.sources_unchanged == 1
    store.close()


def test_cap_on_new_articles_per_poll_leaves_the_rest_for_the_next(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    links = {f"/news/2024/06/story-number-{n}": f"Story {n}" for n in range(5)}
    for path, title in links.items():
        feed_server.add_html(path, article_html(title))
    index = feed_server.add_html("/news", index_html(links))
    config = make_config(
        tmp_path,
        f"  - {{name: news, kind: site, url: '{index}'}}",
        collect="max_site_articles: 3",
    )
    report, store = collect_once(config)
    assert report.new_items == 3
    # The page did not change, but two links were left over: the next poll reads them.
    report = Runner(config, store).collect(due_only=False)
    assert report.new_items == 2
    assert all(feed_server.hits(path) == 1 for path in links)
    store.close()


def test_same_article_from_a_feed_and_a_site_is_one_item(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    path = "/blog/2024/05/council-approves-budget"
    feed_server.add_html(path, article_html("Council approves budget"))
    index = feed_server.add_html("/blog", index_html({path: "Council approves budget"}))
    feed = feed_server.add(
        "/wire.xml", FEED.format(home=feed_server.url, link=feed_server.url_for(path))
    )
    config = make_config(
        tmp_path,
        f"  - {{name: blog, kind: site, url: '{index}'}}\n"
        f"  - {{name: wire, kind: feed, url: '{feed}'}}",
    )
    report, store = collect_once(config)
    assert report.sources_ok == 2 and report.new_items == 1, report.errors
    assert stored(store, "blog").keys() == stored(store, "wire").keys()
    store.close()


def test_a_failing_site_does_not_stop_other_sources(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    index = feed_server.add_status("/gone", 410)
    feed = feed_server.add(
        "/wire.xml", FEED.format(home=feed_server.url, link=feed_server.url_for("/a-story"))
    )
    config = make_config(
        tmp_path,
        f"  - {{name: gone, kind: site, url: '{index}'}}\n"
        f"  - {{name: wire, kind: feed, url: '{feed}'}}",
    )
    report, store = collect_once(config)
    assert report.sources_ok == 1 and report.sources_failed == 1
    state = store.source_state("gone")
    assert state.last_error is not None and "410" in state.last_error
    assert state.disabled_reason
    assert stored(store, "wire")
    store.close()


# --- SSRF: links found on pages ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.5", "[::1]", "[::ffff:127.0.0.1]"],
)
def test_links_to_private_addresses_are_refused(address: str) -> None:
    with pytest.raises(BlockedAddress, match="not a public address"):
        asyncio.run(netguard.check_url(f"http://{address}/blog/a-b-c", netguard.is_public_address))


def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    with pytest.raises(BlockedAddress, match="localhost resolves to"):
        asyncio.run(netguard.check_url("http://localhost/x", netguard.is_public_address))
    with pytest.raises(BlockedAddress, match="only http and https"):
        asyncio.run(netguard.check_url("ftp://example.com/x", netguard.is_public_address))


def test_public_addresses() -> None:
    public = ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"]
    private = ["0.0.0.0", "100.64.0.1", "224.0.0.1", "fe80::1", "fc00::1", "64:ff9b::a00:1"]
    assert all(netguard.is_public_address(ipaddress.ip_address(a)) for a in public)
    assert not any(netguard.is_public_address(ipaddress.ip_address(a)) for a in private)


def test_site_links_on_loopback_are_refused_unless_private_networks_are_allowed(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    path = "/blog/2024/05/council-approves-budget"
    feed_server.add_html(path, article_html("Council approves budget"))
    index = feed_server.add_html("/blog", index_html({path: "Council approves budget"}))
    source = f"  - {{name: blog, kind: site, url: '{index}'}}"

    # The configured page itself is the operator's choice and is read; its link is not.
    report, store = collect_once(make_config(tmp_path, source, allow_private=False))
    assert report.new_items == 0
    error = store.source_state("blog").last_error or ""
    assert "127.0.0.1" in error and "not a public address" in error
    assert feed_server.hits("/blog") == 1 and feed_server.hits(path) == 0
    store.close()

    report, store = collect_once(make_config(tmp_path, source, allow_private=True))
    assert report.new_items == 1 and feed_server.hits(path) == 1
    store.close()


def _loopback_is_public(address: IPAddress) -> bool:
    # 127.0.0.1 stands in for a public web server; every other rule stays.
    return address == ipaddress.IPv4Address("127.0.0.1") or netguard.is_public_address(address)


def _fetch_site(
    request: FetchRequest, config: CollectConfig, policy: netguard.AddressPolicy | None
) -> FetchOutcome:
    async def run() -> FetchOutcome:
        parser = FeedParser(config, 1)
        async with HttpClients(config) as clients, site_tools(config, None, policy) as tools:
            limits = FetchLimits.from_config(config)
            now = datetime.now(UTC)
            context = FetchContext(clients, limits, config, now, parser, sites=tools)
            return await fetch_site(context, request)

    return asyncio.run(run())


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://[::1]:{port}/blog/2024/05/real-article",
        "http://[::ffff:10.0.0.1]/admin",
    ],
)
def test_a_public_link_redirecting_to_a_private_address_is_refused(
    feed_server: FeedServer, target: str
) -> None:
    feed_server.add_html("/blog/2024/05/real-article", article_html("Real article"))
    feed_server.add_redirect("/blog/2024/05/moved-article", target.format(port=feed_server.port))
    index = feed_server.add_html(
        "/blog", index_html({"/blog/2024/05/moved-article": "Moved article"})
    )
    request = FetchRequest(name="blog", kind="site", url=index)
    config = CollectConfig(allow_private_networks=False, timeout=5)

    outcome = _fetch_site(request, config, _loopback_is_public)
    assert outcome.status == "error"
    assert "not a public address" in (outcome.error or "")
    assert feed_server.hits("/blog/2024/05/moved-article") == 1
    assert feed_server.hits("/blog/2024/05/real-article") == 0
    # Refused links are not remembered: allowing private networks later reads them.
    assert not outcome.seen_links


def test_a_redirect_between_allowed_addresses_is_followed(feed_server: FeedServer) -> None:
    feed_server.add_html("/blog/2024/05/real-article", article_html("Real article"))
    feed_server.add_redirect(
        "/blog/2024/05/moved-article", "/blog/2024/05/real-article", absolute=True
    )
    index = feed_server.add_html(
        "/blog", index_html({"/blog/2024/05/moved-article": "Moved article"})
    )
    request = FetchRequest(name="blog", kind="site", url=index)
    config = CollectConfig(allow_private_networks=False, timeout=5)
    outcome = _fetch_site(request, config, _loopback_is_public)
    assert outcome.status == "ok", outcome.error
    (item,) = outcome.items
    assert item.url == feed_server.url_for("/blog/2024/05/real-article")
    assert item.title == "Real article"


# --- Firecrawl --------------------------------------------------------------------------------

SITE = "https://news.example"


def firecrawl_section(server_url: str, api_key: str = "fc-test", timeout: float = 5) -> str:
    return f"firecrawl: {{api_key: {api_key}, api_url: '{server_url}', timeout: {timeout}}}"


def add_firecrawl_site(server: FirecrawlServer, slugs: list[str]) -> None:
    links = [f"{SITE}/blog/2024/05/{slug}" for slug in slugs]
    markdown = "# Latest posts\n\n" + "\n".join(
        f"- [{slug.replace('-', ' ')}]({link})" for slug, link in zip(slugs, links, strict=True)
    )
    server.add_page(
        f"{SITE}/blog", markdown, [f"{SITE}/", f"{SITE}/about", *links], title="Latest posts"
    )
    for slug, link in zip(slugs, links, strict=True):
        title = slug.replace("-", " ").capitalize()
        body = "\n\n".join(f"{p} **Read** [more]({SITE}/more)." for p in PARAGRAPHS)
        server.add_page(
            link,
            f"# {title}\n\n![photo]({SITE}/photo.jpg)\n\n{body}",
            title=title,
            metadata={"publishedTime": "2024-05-01T10:00:00Z"},
        )


def test_firecrawl_first_poll_then_only_new_articles(
    firecrawl_server: FirecrawlServer, tmp_path: Path
) -> None:
    add_firecrawl_site(firecrawl_server, ["council-approves-budget", "new-bus-routes"])
    config = make_config(
        tmp_path,
        f"  - {{name: news, kind: site, url: '{SITE}/blog'}}",
        firecrawl=firecrawl_section(firecrawl_server.url),
    )
    report, store = collect_once(config)
    assert report.new_items == 2, report.errors
    title, text = stored(store, "news")[f"{SITE}/blog/2024/05/council-approves-budget"]
    assert title == "Council approves budget"
    assert text.startswith("The city council voted on Tuesday")
    assert "**" not in text and "](" not in text and "photo" not in text
    requests = firecrawl_server.scrape_requests()
    assert all(isinstance(r.get("timeout"), int) for r in requests)

    add_firecrawl_site(firecrawl_server, ["council-approves-budget", "new-bus-routes", "late"])
    report = Runner(config, store).collect(due_only=False)
    assert report.new_items == 1, report.errors
    scraped = firecrawl_server.scraped_urls
    assert scraped.count(f"{SITE}/blog/2024/05/council-approves-budget") == 1
    assert scraped.count(f"{SITE}/blog/2024/05/late") == 1
    store.close()


def _firecrawl_and_feed(
    firecrawl_url: str, feed_server: FeedServer, tmp_path: Path, **section: object
) -> tuple[Report, Store]:
    feed = feed_server.add(
        "/wire.xml", FEED.format(home=feed_server.url, link=feed_server.url_for("/story"))
    )
    config = make_config(
        tmp_path,
        f"  - {{name: news, kind: site, url: '{SITE}/blog'}}\n"
        f"  - {{name: wire, kind: feed, url: '{feed}'}}",
        firecrawl=firecrawl_section(firecrawl_url, **section),  # type: ignore[arg-type]
    )
    return collect_once(config)


def test_firecrawl_rate_limit_sets_the_next_attempt(
    firecrawl_server: FirecrawlServer, feed_server: FeedServer, tmp_path: Path
) -> None:
    add_firecrawl_site(firecrawl_server, ["council-approves-budget"])
    firecrawl_server.fail_rate_limit(retry_after=120)
    before = datetime.now(UTC)
    report, store = _firecrawl_and_feed(firecrawl_server.url, feed_server, tmp_path)
    state = store.source_state("news")
    assert "rate limit" in (state.last_error or "") and "429" in (state.last_error or "")
    assert state.next_fetch_at is not None
    assert state.next_fetch_at >= before + timedelta(seconds=119)
    assert report.sources_ok == 1 and stored(store, "wire")
    store.close()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("bad key", "refused the API key (HTTP 401)"),
        ("500", "HTTP 500"),
        ("service timeout", "Firecrawl timed out scraping"),
    ],
)
def test_firecrawl_errors_are_readable_and_other_sources_go_on(
    firecrawl_server: FirecrawlServer,
    feed_server: FeedServer,
    tmp_path: Path,
    fault: str,
    expected: str,
) -> None:
    add_firecrawl_site(firecrawl_server, ["council-approves-budget"])
    api_key = "fc-wrong" if fault == "bad key" else "fc-test"
    if fault == "500":
        firecrawl_server.fail(500)
    if fault == "service timeout":
        firecrawl_server.hang(10)
    report, store = _firecrawl_and_feed(
        firecrawl_server.url, feed_server, tmp_path, api_key=api_key, timeout=3
    )
    assert expected in (store.source_state("news").last_error or "")
    assert report.sources_ok == 1 and report.sources_failed == 1 and stored(store, "wire")
    store.close()


def test_firecrawl_that_never_answers_times_out(feed_server: FeedServer, tmp_path: Path) -> None:
    with SilentServer() as silent:
        report, store = _firecrawl_and_feed(silent.url, feed_server, tmp_path, timeout=1)
    error = store.source_state("news").last_error or ""
    assert "no answer from Firecrawl" in error and "within 1 s" in error
    assert report.sources_ok == 1 and stored(store, "wire")
    store.close()


def test_firecrawl_host_down_is_a_readable_error(feed_server: FeedServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    report, store = _firecrawl_and_feed(dead, feed_server, tmp_path)
    error = store.source_state("news").last_error or ""
    assert error.startswith(f"cannot connect to Firecrawl at {dead}")
    assert "refused" in error.lower()
    assert report.sources_ok == 1 and stored(store, "wire")
    store.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]"])
def test_firecrawl_is_not_asked_to_scrape_private_links(
    firecrawl_server: FirecrawlServer, tmp_path: Path, host: str
) -> None:
    page = f"http://{host}/news"
    link = f"http://{host}/news/2024/05/internal-admin-report"
    firecrawl_server.add_page(page, f"[Report]({link})", [link])
    firecrawl_server.add_page(link, "# Report\n\n" + PARAGRAPHS[0], title="Report")
    source = f"  - {{name: internal, kind: site, url: '{page}'}}"
    section = firecrawl_section(firecrawl_server.url)

    report, store = collect_once(
        make_config(tmp_path, source, allow_private=False, firecrawl=section)
    )
    assert "not a public address" in (store.source_state("internal").last_error or "")
    assert link not in firecrawl_server.scraped_urls
    store.close()

    report, store = collect_once(
        make_config(tmp_path, source, allow_private=True, firecrawl=section)
    )
    assert report.new_items == 1 and link in firecrawl_server.scraped_urls
    store.close()


def test_markdown_to_text() -> None:
    markdown = (
        "# Title\n\nSome **bold** and _italic_ text with a [link](https://e.x/a_(b)) and "
        "`code`.\n\n![image](https://e.x/i.png)\n\n> quoted\n\n- one\n- two\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nprint()\n```\n\nTom &amp; Jerry < 3\n\n"
        "set snake_case_name = 2 * 3 * 4, ***both***"
    )
    text = markdown_to_text(markdown)
    assert text.splitlines() == [
        "Title",
        "",
        "Some bold and italic text with a link and code.",
        "",
        "quoted",
        "",
        "one",
        "two",
        "",
        "a · b",
        "1 · 2",
        "",
        "print()",
        "",
        "Tom & Jerry < 3",
        "",
        "set snake_case_name = 2 * 3 * 4, both",
    ]


# --- sources test: feed autodiscovery ----------------------------------------------------------


def test_sources_test_suggests_the_feed_a_page_advertises(
    feed_server: FeedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    feed = feed_server.add(
        "/feed.xml", FEED.format(home=feed_server.url, link=feed_server.url_for("/story"))
    )
    page = feed_server.add_html("/blog", index_html({}, feed="/feed.xml"))
    assert main(["sources", "test", page]) == 1
    out = capsys.readouterr().out
    assert "advertises a feed; use it as a feed source" in out
    assert f"{feed}  (Example feed)" in out
    assert f"kind: feed, url: {feed}" in out


def test_sources_test_kind_site_shows_the_articles(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "/blog/2024/05/council-approves-budget"
    feed_server.add_html(path, article_html("Council approves budget"))
    page = feed_server.add_html(
        "/blog", index_html({path: "Council approves budget"}, feed="/feed.xml")
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: {tmp_path / 'tf.db'}}}\n"
        "collect: {allow_private_networks: true}\n"
        f"sources: [{{name: x, url: '{page}'}}]\n"
    )
    assert main(["--config", str(config), "sources", "test", page, "--kind", "site"]) == 0
    out = capsys.readouterr().out
    assert "1 new articles it would collect" in out
    assert "Council approves budget" in out and feed_server.url_for(path) in out
    assert "The city council voted" in out
    assert f"the page advertises a feed: {feed_server.url_for('/feed.xml')}" in out
