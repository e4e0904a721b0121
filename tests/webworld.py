"""A small world for the web app's tests and benchmark: a config, a store with stories
told by several outlets (some hostile), and a stored digest."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

from processes import storage_setting
from test_hostile import XSS

from core.clock import utcnow
from core.config import Config, parse_config
from core.items import NewItem
from core.store import Store
from daemon.runner import Runner

SOURCES = ("alpha", "beta", "gamma", "delta")
# (title, outlets): outlets reporting it, so each story's signals differ.
STORIES = (
    ("Parliament passes the climate bill after a long night", ("alpha", "beta", "gamma")),
    ("Chip maker unveils a faster laptop processor", ("alpha", "beta")),
    ("Football club wins the cup final on penalties", ("beta", "gamma")),
    ("Storm closes schools across the northern coast", ("gamma", "delta")),
    ("Museum reopens its ancient sculpture gallery", ("delta",)),
    # Every payload of the hostile-input corpus, in one headline.
    (" ".join(XSS) + " hostile headline", ("delta",)),
)


def config_text(directory: Path, extra: str = "", store_url: str | None = None) -> str:
    """`store_url`: the `store_url` fixture's Postgres database, else a SQLite file."""
    sources = "".join(
        f"  - name: {name}\n    url: https://{name}.example.org/feed.xml\n"
        f"    tags: [{'arts' if name == 'delta' else 'news'}]\n"
        for name in SOURCES
    )
    return (
        f"storage:\n  {storage_setting(store_url, str(directory / 'store.db'))}\n"
        f"{extra}"
        f"sources:\n{sources}"
        "digests:\n"
        "  - name: news\n    focus: politics, technology and weather\n"
        f"    deliver:\n      - kind: file\n        directory: {directory / 'out'}\n"
    )


def make_config(directory: Path, extra: str = "", store_url: str | None = None) -> Config:
    return parse_config(config_text(directory, extra, store_url), base=directory)


def item(source: str, title: str, n: int, now: datetime, round: int = 0) -> NewItem:
    slug = hashlib.sha1(title.encode()).hexdigest()[:8]
    url = f"https://{source}.example.org/{slug}/{n}" + (f"?round={round}" if round else "")
    return NewItem(
        id=hashlib.sha1(url.encode()).hexdigest(),
        url=url,
        title=title if n == 0 else f"{title} ({source})",
        text=f"{title}. Reported by {source}. " * 3,
        published=now - timedelta(hours=1 + n),
        content_hash=hashlib.sha1((url + title).encode()).hexdigest(),
    )


def fill(config: Config, now: datetime | None = None, round: int = 0) -> None:
    """Items for every story from each of its outlets, grouped into stories; each `round`
    brings new items (new URLs) for the same stories."""
    now = now or utcnow()
    with Store.open_config(config.storage) as store:
        store.sync_sources((source.name, source.kind, source.url) for source in config.sources)
        for name in SOURCES:
            items = [
                item(name, title, n, now, round)
                for title, outlets in STORIES
                for n, outlet in enumerate(outlets)
                if outlet == name
            ]
            store.add_items(name, items, now)
        Runner(config, store).group()


def build_digest(config: Config) -> None:
    with Store.open_config(config.storage) as store:
        Runner(config, store).digest(config.digests[0])
