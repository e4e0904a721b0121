"""The web app in a real headless Chromium against a real uvicorn on 127.0.0.1: every page at
phone and desktop widths without horizontal overflow or console errors, search, a story,
a vote that changes the next digest's order, and hostile feed text that never runs."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from loopback import closed_port
from loopback.browser import launched
from loopback.slack import SlackReceiver
from loopback.smtp import SMTPServer
from test_browser import WIDTHS
from webworld import build_digest, config_text, fill, make_config

from core.config import Config, parse_config
from core.store import Store
from daemon.runner import Runner
from daemon.web.app import create_app

pytest.importorskip("playwright.sync_api")
PAGES = (
    "/",
    "/stories",
    "/stories?q=climate",
    "/sources",
    "/digests",
    "/status",
    "/digests/preview/news",
)


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    config = make_config(tmp_path)
    fill(config)
    build_digest(config)
    fill(config, round=1)  # new items, so the preview of the next digest has something
    with running(config, closed_port()) as url:
        yield url


@contextmanager
def running(config: Config, port: int, config_file: Path | None = None) -> Iterator[str]:
    app = create_app(config, config_file)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if uv.started:
            break
        time.sleep(0.05)
    assert uv.started, "uvicorn did not start within 5 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


def open_page(browser: Any, width: int) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda message: message.type in ("error", "warning") and problems.append(message.text),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    return page, problems


def test_every_page_reads_on_phone_and_desktop_with_no_console_error(browser, server, tmp_path):
    for device, width in WIDTHS.items():
        page, problems = open_page(browser, width)
        try:
            page.goto(server + "/")
            story = page.locator("a[href^='/stories/']").first.get_attribute("href")
            page.goto(server + "/digests")
            digest = page.locator(
                "a[href^='/digests/']:not([href^='/digests/preview'])"
            ).first.get_attribute("href")
            for path in (*PAGES, story, digest, f"{digest}/delivered", "/stories?q=hostile"):
                page.goto(server + path)
                assert page.locator("h1").first.is_visible(), path
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{path} overflows {width}px by {overflow}px"
                name = re.sub(r"\W+", "-", path).strip("-") or "today"
                page.screenshot(path=str(tmp_path / f"{name}-{device}.png"), full_page=True)
            assert problems == [], problems
        finally:
            page.close()


def test_search_open_a_story_vote_and_the_next_digest_changes(browser, server):
    page, problems = open_page(browser, 1280)
    try:

        def order() -> list[str]:
            page.goto(server + "/digests/preview/news")
            return [
                re.sub(r"^\d+\.\s*", "", t.strip()) for t in page.locator("h2").all_inner_texts()
            ]

        before = order()
        page.goto(server + "/stories")
        page.fill("input[name=q]", "museum")
        page.click("form.search button")
        page.click("ol.hits a")
        assert "Museum reopens" in page.locator("h1").inner_text()
        page.click("form.vote button[value=up]")
        assert page.locator("form.vote button[aria-pressed=true]").count() == 1
        page.goto(server + "/stories?q=parliament")
        page.click("ol.hits a")
        page.click("form.vote button[value=down]")
        after = order()
        museum = lambda titles: next(n for n, t in enumerate(titles) if t.startswith("Museum"))  # noqa: E731
        assert museum(after) < museum(before), (before, after)
        assert problems == [], problems
    finally:
        page.close()


def test_vote_links_in_the_email_and_slack_digests_confirm_then_vote_once(
    browser, tmp_path, smtp_server: SMTPServer, slack_receiver: SlackReceiver
):
    port = closed_port()
    targets = (
        f"      - {{kind: email, host: 127.0.0.1, port: {smtp_server.port}, security: none, "
        "timeout: 5, sender: tf@example.org, to: [reader@example.org]}\n"
        f"      - {{kind: slack, webhook_url: '{slack_receiver.webhook_url}', timeout: 5}}\n"
    )
    extra = f"serve:\n  public_url: http://127.0.0.1:{port}/\n"
    config = parse_config(config_text(tmp_path, extra) + targets, base=tmp_path)
    fill(config)
    build_digest(config)
    with Store.open(config.storage.database) as store:
        assert Runner(config, store).deliver().deliveries_sent == 3
    [mail] = smtp_server.messages
    html = mail.message.get_body(("html",)).get_content()
    up_links = re.findall(r'href="([^"]+)"[^>]*>👍 More like this', html)
    assert up_links and all(url.startswith(f"http://127.0.0.1:{port}/vote?") for url in up_links)
    assert re.findall(r"👎 Less like this: (\S+)", mail.text), "the text part has the links too"
    slack_text = str(slack_receiver.messages)
    assert slack_text.count("|👍 More like this>") == len(up_links)
    assert slack_text.count("|👎 Less like this>") == len(up_links)

    page, problems = open_page(browser, 375)
    with running(config, port):
        try:
            link = up_links[0].replace("&amp;", "&")
            for _ in range(2):  # a second click is harmless
                page.goto(link)
                assert page.locator("h1").inner_text() == "Confirm your vote"
                with Store.open(config.storage.database, read_only=True) as store:
                    assert len(store.votes("news")) <= 1, "opening a link votes nothing"
                page.click("form[action='/vote'] button")
            assert page.locator("h1").inner_text() == "This vote was already recorded."
            with Store.open(config.storage.database, read_only=True) as store:
                assert [vote.value for vote in store.votes("news")] == [1]
            response = page.goto(link.replace("value=1", "value=-1"))
            assert response is not None and response.status == 400
            assert "not valid" in page.locator("main").inner_text()
            assert problems == [] or all("400" in problem for problem in problems), problems
        finally:
            page.close()
