"""The HTML email and the archive index in a real headless Chromium, at desktop and phone widths.

Screenshots land in the session's artifacts directory (printed at the end of the run) for a
person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sample_digests as samples
from loopback.browser import CHROMIUM, launched

from core.config import FileTarget
from core.digest import Digest, DigestItem, Trend
from digests import render
from digests.deliver import send

WIDTHS = {"desktop": 1280, "phone": 375}

pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
        allow_module_level=True,
    )


def awkward_digest() -> Digest:
    """Real-world trouble for a layout: long unbroken words and URLs, many sources."""
    long_url = "https://news.example/" + "very-long-path-segment-" * 12 + "?id=" + "9" * 60
    long_word = "Supercalifragilistic" * 6
    trends = [
        Trend(
            rank=1,
            title=f"{long_word} outage takes down payments across Europe",
            summary="A cascading failure in a cloud region took card payments offline. " * 4,
            why_it_matters="Reported by 6 sources; matches this digest's focus.",
            items=(
                DigestItem(
                    title="Payments down: " + long_word,
                    url=long_url,
                    source="A very long outlet name that goes on and on",
                    published=samples.CREATED - timedelta(hours=2),
                ),
                *samples.trend(1, items=5).items,
            ),
        ),
        *(samples.trend(n) for n in range(2, 7)),
    ]
    return samples.digest(tuple(trends))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


VISIBILITY = """
(element) => {
  const box = element.getBoundingClientRect();
  const style = getComputedStyle(element);
  return {
    width: box.width, height: box.height, left: box.left, right: box.right,
    hidden: style.visibility !== "visible" || style.display === "none" || style.opacity === "0",
    clipped: element.scrollWidth > element.clientWidth + 1,
  };
}
"""


def check_page(
    browser: Any, shots: Path, name: str, selector: str, titles: list[str], load: Any
) -> None:
    for device, width in WIDTHS.items():
        page = browser.new_page(viewport={"width": width, "height": 900})
        try:
            load(page)
            page.screenshot(path=str(shots / f"{name}-{device}.png"), full_page=True)
            headings = page.locator(selector)
            assert headings.count() == len(titles)
            view_width = page.evaluate("window.innerWidth")
            for index, title in enumerate(titles):
                heading = headings.nth(index)
                assert title in heading.inner_text()
                assert heading.is_visible()
                seen = heading.evaluate(VISIBILITY)
                assert seen["width"] > 0 and seen["height"] > 0, (device, title)
                assert not seen["hidden"] and not seen["clipped"], (device, title, seen)
                assert seen["left"] >= 0 and seen["right"] <= view_width + 1, (device, seen)
            if device == "phone":
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{name} overflows the phone width by {overflow}px"
        finally:
            page.close()


def test_the_email_reads_on_desktop_and_phone(browser, artifacts):
    digest = awkward_digest()
    html = render.html(digest)
    titles = [f"{trend.rank}. {trend.title}" for trend in digest.trends]
    check_page(browser, artifacts, "email", "h2", titles, lambda page: page.set_content(html))


def test_hostile_text_renders_as_text(browser):
    digest = samples.hostile()
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.set_content(render.html(digest))
        assert page.locator("script, img, svg, iframe").count() == 0
        assert "<script>alert('x')</script>" in page.locator("h2").inner_text()
        assert dialogs == []
    finally:
        page.close()


def test_the_archive_index_reads_on_desktop_and_phone(browser, artifacts, tmp_path):
    target = FileTarget(kind="file", directory=tmp_path)
    digests = [awkward_digest(), samples.digest(created=samples.CREATED + timedelta(days=1))]
    for digest in digests:
        send(digest, target)
    index = tmp_path / "morning-brief" / "index.html"
    titles = [trend.title for digest in reversed(digests) for trend in digest.trends[:3]]
    check_page(
        browser,
        artifacts,
        "archive-index",
        "li.trend-title",
        titles,
        lambda page: page.goto(index.as_uri()),
    )


BAR_HEIGHTS = """
() => [...document.querySelectorAll('td.bar')].map((bar) => {
  const fill = bar.querySelector('td[height]');
  return {items: Number(bar.dataset.items), height: fill ? fill.getBoundingClientRect().height : 0};
})
"""


def test_each_trends_timeline_draws_as_bars_proportional_to_its_items(browser, artifacts):
    trends = tuple(samples.history(samples.trend(n)) for n in range(1, 4))
    digest = samples.digest(trends)
    for device, width in WIDTHS.items():
        page = browser.new_page(viewport={"width": width, "height": 900})
        try:
            page.set_content(render.html(digest))
            page.screenshot(path=str(artifacts / f"charts-{device}.png"), full_page=True)
            # Mail clients block these; the chart uses none of them.
            assert page.locator("script, img, svg, canvas, iframe").count() == 0
            bars = page.evaluate(BAR_HEIGHTS)
            hours = len(trends[0].timeline.buckets)  # type: ignore[union-attr]
            assert len(bars) == hours * len(trends)
            tallest = max(bar["height"] for bar in bars)
            assert 30 <= tallest <= 40
            for bar in bars:
                if bar["items"] == 0:
                    assert bar["height"] == 0
                else:
                    assert bar["height"] >= 2
            peak = max(bars[:hours], key=lambda bar: bar["items"])
            assert peak["height"] == tallest
            charts = page.locator("table.timeline")
            assert charts.count() == len(trends) and charts.first.is_visible()
            assert "Broke it:" in page.locator("p.coverage").first.inner_text()
            if device == "phone":
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0
        finally:
            page.close()
