"""The web app in a real headless Chromium against a real uvicorn on 127.0.0.1: every page at
phone and desktop widths without horizontal overflow or console errors, search, a story,
a vote that changes the next digest's order, and hostile feed text that never runs."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from loopback.browser import launched
from test_browser import WIDTHS
from webworld import build_digest, fill, make_config

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    config = make_config(tmp_path)
    fill(config)
    build_digest(config)
    fill(config, round=1)  # new items, so the preview of the next digest has something
    port = free_port()
    uv = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
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
            for path in (*PAGES, story, "/stories?q=hostile"):
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
