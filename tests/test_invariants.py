"""The reliability invariants hold on a clean cycle, and each one notices a real violation."""

from __future__ import annotations

from datetime import UTC, datetime

from loopback.invariants import (
    delivered_exactly_once,
    deliveries_all_sent,
    no_item_vanished,
    store_is_healthy,
    stored_digest_ids,
)

from core.store import Store
from daemon.demo import FEEDS, demo_config, serve_samples
from daemon.runner import Runner


def test_a_clean_cycle_keeps_every_invariant_and_a_lost_digest_is_noticed(tmp_path, store_url):
    with serve_samples(datetime.now(UTC)) as base:
        config = demo_config(base, tmp_path)
        if store_url is not None:
            storage = config.storage.model_copy(update={"path": None, "url": store_url})
            config = config.model_copy(update={"storage": storage})
        with Store.open_config(config.storage) as store:
            Runner(config, store).run_once(everything=True)
        served = [item.link for item in _served_links(base)]
    assert store_is_healthy(config) == []
    assert no_item_vanished(config, served) == []
    assert deliveries_all_sent(config) == []
    [digest_id] = stored_digest_ids(config)
    assert delivered_exactly_once({"file": [digest_id]}, [digest_id]) == []
    assert delivered_exactly_once({"file": [digest_id, digest_id]}, [digest_id]) != []

    # A digest row lost after its items were marked covered is a vanished-items violation
    # (foreign keys off: SQLite's pragma, or Postgres's replica role that skips them).
    with Store.open_config(config.storage) as store:
        if store_url is None:
            store.sql.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, or a no-op
        else:
            store.sql.execute("SET session_replication_role = replica")
        with store.transaction():
            store.sql.execute("DELETE FROM deliveries")
            store.sql.execute("DELETE FROM digests")
    assert any("missing digest" in problem for problem in no_item_vanished(config))


class _Link:
    def __init__(self, link: str) -> None:
        self.link = link


def _served_links(base: str) -> list[_Link]:
    import feedparser
    import httpx

    links = []
    for file in FEEDS.values():
        parsed = feedparser.parse(httpx.get(f"{base}/{file}").content)
        links += [_Link(entry.link) for entry in parsed.entries]
    return links
