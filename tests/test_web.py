"""The web app over HTTP (Starlette's TestClient, and a real uvicorn where a process matters):
pages, search, votes that change the next digest's order, auth, CSRF, signed vote links,
hostile text escaped, and reading while another process holds the store."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from loopback import closed_port
from starlette.testclient import TestClient
from test_hostile import html_problems
from webworld import build_digest, config_text, fill, item, make_config

from core.clock import utcnow
from core.store import Store
from daemon.runner import Runner
from daemon.web.app import ServeRefused, check_binding, create_app
from daemon.web.signing import VoteLink, load_secret, vote_url

PAGES = ("/", "/stories", "/stories?q=climate", "/sources", "/digests", "/status")


@pytest.fixture
def world(tmp_path):
    config = make_config(tmp_path)
    fill(config)
    build_digest(config)
    return config


def client(config, **kwargs) -> TestClient:
    return TestClient(create_app(config), base_url="http://127.0.0.1", **kwargs)


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def story_links(page: str) -> list[str]:
    return re.findall(r'href="(/stories/[^"?]+)"', page)


def preview_titles(web: TestClient) -> list[str]:
    page = web.get("/digests/preview/news").text
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", page, re.S)
    return [re.sub(r"^\d+\.\s*", "", re.sub(r"<[^>]+>", "", h).strip()) for h in headings]


def test_every_page_renders_and_escapes_hostile_feed_text(world):
    web = client(world)
    with Store.open(world.storage.database, read_only=True) as store:
        urls = frozenset(
            item.url
            for item in store.ungrouped_items()
            + store.grouped_items_since(utcnow() - timedelta(days=9))
        )
    digest_id = re.search(r'href="/digests/([^"/]+)"', web.get("/digests").text).group(1)
    story = story_links(web.get("/").text)[0]
    pages = [
        *PAGES,
        story,
        f"/digests/{digest_id}",
        f"/digests/{digest_id}/delivered",
        "/digests/preview/news",
        "/stories?q=script",
    ]
    for path in pages:
        response = web.get(path)
        assert response.status_code == 200, path
        assert "<script>alert" not in response.text, path
        own = {
            link
            for link in re.findall(r'(?:href|action)="([^"]+)"', response.text)
            if link.startswith("/")
        }
        problems = [p for p in html_problems(response.text, urls | own, path) if "<form>" not in p]
        assert problems == [], problems
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in web.get("/stories?q=hostile").text
    assert re.search(r"\d+ items, 6 stories, 1 digests", web.get("/status").text)


def test_search_ranks_matches_and_filters_by_source_tag_and_date(world):
    web = client(world)
    page = web.get("/stories", params={"q": "climate bill"}).text
    assert "Parliament passes the climate bill" in page
    assert "Chip maker" not in page
    assert "Museum" not in web.get("/stories", params={"q": "sculpture", "source": "alpha"}).text
    assert "Museum" in web.get("/stories", params={"q": "sculpture", "source": "delta"}).text
    assert "Museum" not in web.get("/stories", params={"q": "sculpture", "tag": "news"}).text
    assert "Museum" in web.get("/stories", params={"q": "sculpture", "tag": "arts"}).text
    future = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%d")
    assert "No story matches" in web.get("/stories", params={"since": future}).text
    # FTS5 syntax typed by a reader is only words, never an error.
    assert web.get("/stories", params={"q": 'AND OR "( NEAR'}).status_code == 200
    assert web.get("/stories", params={"since": "yesterday"}).status_code == 400


def test_pages_show_what_the_daemon_stored_after_the_server_started(world):
    # Each worker thread keeps its store open between requests; it must still see new commits.
    web = client(world)
    assert "No story matches" in web.get("/stories", params={"q": "zeppelin"}).text
    with Store.open(world.storage.database) as store:
        store.add_items(
            "alpha", [item("alpha", "Zeppelin lands in the harbour", 0, utcnow())], utcnow()
        )
    assert "Zeppelin lands in the harbour" in web.get("/stories", params={"q": "zeppelin"}).text


def test_a_story_page_shows_its_items_across_outlets(world):
    web = client(world)
    page = web.get("/stories", params={"q": "parliament"}).text
    story = web.get(story_links(page)[0]).text
    assert "3 outlets (alpha, beta, gamma)" in story


def test_stories_filter_by_status_and_a_story_shows_its_timeline_and_coverage(world):
    now = utcnow()
    with Store.open(world.storage.database) as store:
        fresh = [
            item(name, "Volcano erupts near the island airport", n, now, 0)
            for n, name in enumerate(("alpha", "beta"))
        ]
        for one, name in zip(fresh, ("alpha", "beta"), strict=True):
            store.add_items(name, [one], now)
        Runner(world, store).group()
    web = client(world)
    new = web.get("/stories", params={"status": "new"}).text
    developing = web.get("/stories", params={"status": "developing", "profile": "news"}).text
    assert "Volcano erupts" in new and "Parliament passes" not in new
    assert "Parliament passes" in developing and "Volcano erupts" not in developing
    assert web.get("/stories", params={"status": "sideways"}).status_code == 400
    story = web.get(story_links(web.get("/stories", params={"q": "parliament"}).text)[0]).text
    assert re.search(r'<table role="img" aria-label="[^"]*3 items', story), "the timeline chart"
    assert "Broke it:" in story and "Followed:" in story, "the coverage map"


def test_a_vote_changes_the_next_digests_order_and_says_why(tmp_path):
    config = make_config(tmp_path)
    fill(config)
    web = client(config)
    before = preview_titles(web)
    assert before, "the preview shows trends"

    def museum(titles: list[str]) -> int:
        return next(n for n, title in enumerate(titles) if title.startswith("Museum"))

    def vote(query: str, value: str) -> str:
        story = story_links(web.get("/stories", params={"q": query}).text)[0]
        token = csrf(web.get(story).text)
        data = {
            "csrf": token,
            "profile": "news",
            "story": story.removeprefix("/stories/"),
            "value": value,
            "back": story,
        }
        response = web.post("/votes", data=data, follow_redirects=False)
        assert response.status_code == 303
        return story

    story = vote("museum", "up")
    assert 'aria-pressed="true"' in web.get(story).text
    vote("parliament", "down")
    after = preview_titles(web)
    assert museum(after) < museum(before), (before, after)
    assert "Your votes moved it up" in web.get("/digests/preview/news").text


def test_every_post_needs_its_csrf_token(world):
    web = client(world)
    web.get("/")
    for path, data in (
        ("/votes", {"profile": "news", "story": "x", "value": "up"}),
        ("/sources/test", {"url": "http://127.0.0.1:9/"}),
        ("/vote", {"profile": "news"}),
    ):
        assert web.post(path, data=data).status_code == 403
        assert web.post(path, data={**data, "csrf": "0" * 64}).status_code == 403
    # A token from another browser's cookie does not pass either.
    other = client(world)
    token = csrf(other.get("/sources").text)
    fresh = client(world)
    fresh.get("/")
    assert (
        fresh.post(
            "/votes", data={"csrf": token, "profile": "news", "story": "x", "value": "up"}
        ).status_code
        == 403
    )


def test_off_loopback_needs_a_token_and_pages_then_need_it(world, tmp_path):
    with pytest.raises(ServeRefused, match=r"serve\.token"):
        check_binding(world, "0.0.0.0")
    config = make_config(tmp_path, "serve:\n  token: s3cret-token-value\n")
    check_binding(config, "0.0.0.0")
    web = client(config)
    assert web.get("/status", follow_redirects=False).headers["location"] == "/login"
    assert web.get("/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        web.get("/status", headers={"Authorization": "Bearer s3cret-token-value"}).status_code
        == 200
    )
    login = web.get("/login").text
    assert web.post("/login", data={"csrf": csrf(login), "token": "nope"}).status_code == 403
    done = web.post(
        "/login", data={"csrf": csrf(login), "token": "s3cret-token-value"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert "s3cret-token-value" not in done.headers.get("set-cookie", "")


def test_no_page_reveals_config_secrets(tmp_path):
    secret_values = ("sk-test-secret-key-123456", "smtp-password-98765", "serve-token-abcdef")
    config = make_config(
        tmp_path,
        f"llm:\n  api_key: {secret_values[0]}\nserve:\n  token: {secret_values[2]}\n",
    )
    fill(config)
    web = client(config, headers={"Authorization": f"Bearer {secret_values[2]}"})
    for path in PAGES:
        page = web.get(path).text
        assert not any(value in page for value in secret_values), path


def signed(config, value=1, *, story=None, expires_in=timedelta(days=1)):
    with Store.open(config.storage.database, read_only=True) as store:
        story = story or store.search("museum")[0].story_id
    secret = load_secret(config.serve.secret, config.storage.state_dir)
    url = vote_url(
        "http://127.0.0.1", secret, "news", story, value, utcnow() + expires_in - timedelta(days=14)
    )
    return url, parse_qs(urlsplit(url).query)


def test_a_signed_vote_link_confirms_on_get_and_votes_once_on_post(world):
    web = client(world)
    url, params = signed(world)
    page = web.get(url)
    assert page.status_code == 200 and "Confirm your vote" in page.text
    with Store.open(world.storage.database, read_only=True) as store:
        assert store.votes("news") == [], "a GET (a link scanner) votes nothing"
    form = {key: values[0] for key, values in params.items()} | {"csrf": csrf(page.text)}
    assert "Vote recorded." in web.post("/vote", data=form).text
    assert "already recorded" in web.post("/vote", data=form).text
    with Store.open(world.storage.database, read_only=True) as store:
        assert [vote.value for vote in store.votes("news")] == [1]


def test_a_tampered_or_expired_vote_link_is_refused(world):
    web = client(world)
    url, params = signed(world)
    tampered = url.replace("value=1", "value=-1")
    assert "not valid" in web.get(tampered).text
    assert web.get(tampered).status_code == 400
    expired, _ = signed(world, expires_in=timedelta(seconds=-5))
    assert "expired" in web.get(expired).text
    forged = VoteLink("news", params["story"][0], 1, 2**40).query(b"another server's secret")
    assert web.get(f"/vote?{forged}").status_code == 400


def test_pages_read_while_another_process_writes_and_a_vote_waits_then_says_busy(world, tmp_path):
    config = make_config(tmp_path, "storage:\n  busy_timeout: 1s\n".replace("storage:\n", ""))
    config = world.model_copy(
        update={"storage": world.storage.model_copy(update={"busy_timeout": timedelta(seconds=1)})}
    )
    web = client(config)
    token = csrf(web.get("/").text)
    holder = sqlite3.connect(config.storage.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE sources SET failures = failures")
        for path in PAGES:
            assert web.get(path).status_code == 200, path
        story = story_links(web.get("/").text)[0].removeprefix("/stories/")
        busy = web.post(
            "/votes", data={"csrf": token, "profile": "news", "story": story, "value": "down"}
        )
        assert busy.status_code == 503 and "busy" in busy.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    done = web.post(
        "/votes",
        data={"csrf": token, "profile": "news", "story": story, "value": "down"},
        follow_redirects=False,
    )
    assert done.status_code == 303


def test_serve_refuses_a_public_address_without_a_token(world, tmp_path, capsys):
    from webworld import config_text

    from daemon.cli import main

    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path))
    assert main(["--config", str(path), "serve", "--host", "0.0.0.0"]) == 2
    assert "serve.token" in capsys.readouterr().err


def test_trendfinder_serve_offers_adding_sources_when_enabled(tmp_path):
    """The command itself, not create_app: `serve` must hand the app the file it read."""
    import subprocess
    import sys
    import time

    import httpx
    from processes import cli_env

    from core.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(
        config_text(tmp_path).replace("sources:", "serve:\n  allow_source_edits: true\nsources:", 1)
    )
    fill(load_config(path))
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(path), "serve", "--port", str(port)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        page = None
        for _ in range(300):
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/sources", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert page is not None, "trendfinder serve did not answer within 15 s"
        assert page.status_code == 200 and "Add a source" in page.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_inside_the_daemon_it_serves_on_the_configured_port(world, tmp_path):
    import time

    import httpx

    from daemon.web.app import serve_in_background

    port = closed_port()
    config = world.model_copy(
        update={"serve": world.serve.model_copy(update={"enabled": True, "port": port})}
    )
    server = serve_in_background(config)
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "the web app did not start within 5 s"
        page = httpx.get(f"http://127.0.0.1:{port}/status", timeout=10)
        assert page.status_code == 200 and "Status" in page.text
    finally:
        server.should_exit = True


def test_digests_carry_vote_links_only_when_the_server_has_a_public_url(tmp_path):
    from daemon.web.signing import digest_vote_links
    from digests import blockkit, render

    for public_url, expected in ((None, 0), ("https://news.example.org", 1)):
        config = make_config(
            tmp_path / str(expected), f"serve:\n  public_url: {public_url or 'null'}\n"
        )
        fill(config)
        build_digest(config)
        with Store.open(config.storage.database, read_only=True) as store:
            digest = store.digest(store.digest_summaries(limit=1)[0].id)
        votes = digest_vote_links(config.serve, config.storage.state_dir, digest)
        stories = sum(1 for trend in digest.trends if trend.story)
        bodies = (
            render.html(digest, votes=votes),
            render.text(digest, votes=votes),
            render.markdown(digest, votes=votes),
            str([m.payload() for m in blockkit.messages(digest, archive=False, votes=votes)]),
        )
        for body in bodies:
            assert body.count("👍 More like this") == expected * stories
            assert body.count("https://news.example.org/vote?") == expected * 2 * stories


def test_sources_show_engagement_where_a_source_has_it(world):
    from core.items import Engagement, FetchOutcome

    with Store.open(world.storage.database) as store:
        [one, other] = [store.story_members(hit.story_id)[0].id for hit in store.search(None)[:2]]
        seen = (Engagement(one, "someone", likes=40, reposts=3, comments=2),)
        again = (Engagement(one, "someone", likes=55, reposts=4, comments=2),)
        later = (Engagement(other, "someone", likes=5, reposts=0, comments=1),)
        for when, numbers in ((1, seen), (2, again), (3, later)):
            outcome = FetchOutcome(source="beta", status="ok", engagement=numbers)
            store.record_social(outcome, utcnow() - timedelta(minutes=10 * when))
    page = client(world).get("/sources").text
    rows = dict(re.findall(r"<td>(\w+)<br>.*?<td class=\"engagement\">(.*?)</td>", page, re.S))
    assert rows["beta"] == "60 likes, 4 reposts, 3 comments on 2 posts"
    assert rows["alpha"] == "", "a feed shows no engagement"


def test_adding_a_source_writes_the_config_keeping_comments_only_when_enabled(tmp_path):
    from core.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(
        "# my reading\n" + config_text(tmp_path).replace("sources:", "sources:  # feeds")
    )
    path.chmod(0o600)
    fill(load_config(path))
    web = TestClient(create_app(load_config(path), path), base_url="http://127.0.0.1")
    page = web.get("/sources").text
    assert "Add a source" not in page, "off unless serve.allow_source_edits"
    form = {"csrf": csrf(page), "name": "epsilon", "url": "https://e.example.org/feed.xml"}
    assert web.post("/sources", data=form).status_code == 403

    path.write_text(
        path.read_text().replace("sources:", "serve:\n  allow_source_edits: true\nsources:", 1)
    )
    web = TestClient(create_app(load_config(path), path), base_url="http://127.0.0.1")
    page = web.get("/sources").text
    assert "Add a source" in page
    form["csrf"] = csrf(page)
    assert web.post("/sources", data={**form, "csrf": "forged"}).status_code == 403
    added = web.post("/sources", data={**form, "tags": "news, science"}, follow_redirects=False)
    assert added.status_code == 303
    text = path.read_text()
    assert text.startswith("# my reading\n") and "sources:  # feeds" in text
    assert (path.stat().st_mode & 0o777) == 0o600, "a config with secrets stays private"
    [epsilon] = [s for s in load_config(path).sources if s.name == "epsilon"]
    assert epsilon.url == "https://e.example.org/feed.xml" and epsilon.tags == ("news", "science")
    assert "epsilon" in web.get("/sources").text

    before = path.read_text()
    again = web.post("/sources", data=form)
    assert again.status_code == 400 and "unique" in again.text
    local = web.post("/sources", data={**form, "name": "zeta", "url": "file:///etc/passwd"})
    assert local.status_code == 400
    assert path.read_text() == before, "a refused source leaves the file as it was"


def test_today_shows_each_trend_with_its_charts_as_the_email_does(world):
    page = client(world).get("/").text
    with Store.open(world.storage.database, read_only=True) as store:
        digest = store.last_digest("news")
    charted = [trend for trend in digest.trends if trend.timeline and trend.coverage]
    assert charted, "the digest has charts to show"
    assert page.count('<table role="img"') == len(charted)
    assert page.count("Broke it:") == len(charted)


def test_testing_a_url_shows_what_sources_test_shows(world, feed_server):
    from test_collect import rss

    url = feed_server.add("/feed", rss(("Bridge reopens", "https://site.example/b", "x")))
    web = client(world)
    token = csrf(web.get("/sources").text)
    page = web.post("/sources/test", data={"csrf": token, "url": url, "kind": "feed"}).text
    assert "1 items" in page and "Bridge reopens" in page
    gone = feed_server.add_status("/gone", 404)
    broken = web.post("/sources/test", data={"csrf": token, "url": gone})
    assert "404" in broken.text
