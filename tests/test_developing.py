"""Developing stories: what changed since a digest reported them, one Atom entry per story
updated in place (read back by feedparser), and the story's page in the archive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser
from processes import storage_setting
from test_alerts import Clock, publish

from core.config import DigestProfile, FileTarget, parse_config
from core.history import Reported
from core.items import StoredItem
from core.store import Store
from daemon.runner import Runner
from digests import changes
from digests.pack import PackSettings, pack
from digests.selection import Selection
from digests.signals import score_stories, window_stories
from digests.tokens import load_counter

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def stored(item_id: str, source: str, title: str, text: str) -> StoredItem:
    return StoredItem(
        item_id, f"https://{source}.example/{item_id}", title, text, T0, T0, (source,), "st"
    )


def test_what_changed_names_new_outlets_sentences_and_names():
    reported = Reported(
        at=T0,
        items=(
            stored("a", "wire", "Dam breach floods Zorvath valley",
                   "The dam above Zorvath failed on Tuesday night. Hundreds of homes flooded."),
        ),
    )  # fmt: skip
    new = [
        stored("b", "herald", "Zorvath dam breach: homes flooded",
               "The dam above Zorvath failed on Tuesday night. Engineers from Kelmar Hydro "
               "warned of cracks in the spillway three weeks ago."),
    ]  # fmt: skip
    found = changes.what_changed(new, reported)
    assert found.new_outlets == ("herald",)
    assert found.new_facts == (
        "Engineers from Kelmar Hydro warned of cracks in the spillway three weeks ago.",
    )
    assert "Kelmar Hydro" in found.new_entities and "Zorvath" not in found.new_entities
    assert found.since == T0


def test_the_dump_carries_what_was_reported_before(tmp_path):
    item = stored("b", "herald", "Zorvath dam breach: homes flooded", "Engineers warned.")
    profile = DigestProfile(name="desk", focus="news", deliver=(FileTarget(kind="file"),))
    selection = Selection(
        profile, T0 - timedelta(days=1), T0, (item,), (), {"st": frozenset({"wire"})}, {}, {}
    )
    stories = score_stories(window_stories([item]), selection)
    told = {"st": "2026-12-01 06:00 UTC: Dam breach floods Zorvath valley"}
    dump = pack(
        stories,
        load_counter("o200k_base", tmp_path, download=False),
        5000,
        PackSettings(),
        reported=told,
    ).dump
    assert "Reported before, 2026-12-01 06:00 UTC: Dam breach floods Zorvath valley" in dump


def test_a_developing_story_says_what_changed_and_updates_its_atom_entry(tmp_path, store_url):
    text = f"""
storage: {{{storage_setting(store_url, str(tmp_path / "t.db"))}}}
sources:
  - {{name: wire, url: 'https://wire.example/feed'}}
  - {{name: herald, url: 'https://herald.example/feed'}}
  - {{name: ledger, url: 'https://ledger.example/feed'}}
digests:
  - name: desk
    focus: Editors watching breaking news.
    deliver:
      - {{kind: file, directory: {tmp_path / "out"}}}
"""
    config = parse_config(text)
    clock = Clock()
    with Store.open_config(config.storage) as store:
        runner = Runner(config, store, clock)
        story = "Dam breach floods Zorvath valley"
        publish(store, clock, "wire", story, 0)
        publish(store, clock, "herald", story, 5)
        runner.group()
        first = runner.digest(config.digests[0])
        assert first is not None and first.digest.trends[0].changed is None
        runner.deliver()
        clock.now += timedelta(hours=3)
        publish(store, clock, "ledger", story, 190)
        runner.group()
        second = runner.digest(config.digests[0])
        assert second is not None
        trend = second.digest.trends[0]
        assert trend.story == first.digest.trends[0].story
        assert trend.changed is not None and trend.changed.new_outlets == ("ledger",)
        assert trend.changed.since == first.digest.created_at
        runner.deliver()
    folder = tmp_path / "out" / "desk"
    feed = feedparser.parse((folder / "feed.atom").read_bytes())
    assert feed.bozo is False, feed.get("bozo_exception")
    assert len(feed.entries) == 1  # the same entry, updated; not a near-duplicate
    [entry] = feed.entries
    assert entry.updated_parsed[:6] == second.digest.created_at.timetuple()[:6]
    assert entry.published_parsed[:6] == first.digest.created_at.timetuple()[:6]
    assert "new outlets: ledger" in entry.content[0].value
    page = (folder / entry.link).read_text()
    assert "Told in 2 digests" in page and 'class="bar"' in page
