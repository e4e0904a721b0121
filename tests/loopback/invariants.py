"""The reliability suite's invariants, checked against a real store file and real receivers.

Each check returns a list of violations (plain sentences); an empty list means it holds.
They read the store with plain SQL, as an operator would (a read-only open of the SQLite
file or the Postgres database the config names), so they trust nothing the daemon reports
about itself.

1. No item vanishes: every stored item is either covered by a stored digest of each profile
   that selects it, or still pending for that profile (and inside its lookback, so the next
   digest will see it). Every item the world served is in the store.
2. Every stored digest reaches each of its targets exactly once, except the one message in
   flight at a crash, which may arrive twice (with the same Message-ID for email).
3. The store passes `PRAGMA integrity_check` (SQLite; a Postgres server enforces its
   foreign keys itself), opens and migrates, and `status` runs.

And what arrived says something: digests with the model's trends reached every receiver
(`trends_arrived`), so a world whose fake model understood nothing cannot pass on empty
digests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from core.clock import from_text, utcnow
from core.config import Config
from core.store import Store
from core.urls import canonical_url
from daemon.status import gather


def _reader(config: Config) -> Store:
    """A read-only open of the config's store (SQLite file or Postgres database); close it
    (a `with` block) so that a test can unmount its directory or drop its database."""
    return Store.open_config(config.storage, read_only=True)


def stored_rows(config: Config, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of one query (`?` parameters) on the config's store, either backend."""
    with _reader(config) as store:
        return store.sql.query(sql, params)


def store_is_healthy(config: Config) -> list[str]:
    """Invariant 3: integrity, opening (with migrations) and `status` all work."""
    problems: list[str] = []
    if config.storage.url is None:
        # Postgres checks its foreign keys at every commit and has no client-side
        # equivalent of integrity_check: a killed client cannot tear its files.
        with _reader(config) as store:
            verdict = [row[0] for row in store.sql.execute("PRAGMA integrity_check")]
            if verdict != ["ok"]:
                problems.append(f"integrity_check: {verdict[:5]}")
            dangling = store.sql.execute("PRAGMA foreign_key_check").fetchall()
            if dangling:
                problems.append(f"foreign_key_check: {len(dangling)} dangling references")
    try:
        with Store.open_config(config.storage) as store:
            gather(config, store, utcnow())
    except Exception as error:  # any failure here is the violation being looked for
        problems.append(f"store does not open or status fails: {error!r}")
    return problems


def no_item_vanished(
    config: Config, served_urls: Iterable[str] = (), now: datetime | None = None
) -> list[str]:
    """Invariant 1: stored items are covered or pending for each profile selecting them."""
    now = now or utcnow()
    problems: list[str] = []
    with _reader(config) as store:
        stored_urls = {row["url"] for row in store.sql.query("SELECT url FROM items")}
        for url in served_urls:
            if canonical_url(url) not in stored_urls:
                problems.append(f"served item {url} is not in the store")
        digests = {row["id"] for row in store.sql.query("SELECT id FROM digests")}
        covered: dict[tuple[str, str], str] = {
            (row["profile"], row["item_id"]): row["digest_id"]
            for row in store.sql.query("SELECT profile, item_id, digest_id FROM digest_items")
        }
        for (profile_name, item_id), digest_id in covered.items():
            if digest_id not in digests:
                problems.append(
                    f"item {item_id} covered for {profile_name} by missing digest {digest_id}"
                )
        links = store.sql.query("SELECT item_id, source, first_seen FROM item_sources")
    for profile in config.digests:
        selected = {source.name for source in config.sources_for(profile)}
        horizon = now - profile.lookback
        for link in links:
            if link["source"] not in selected or (profile.name, link["item_id"]) in covered:
                continue
            if from_text(link["first_seen"]) < horizon:
                problems.append(
                    f"item {link['item_id']} from {link['source']} fell out of {profile.name}'s "
                    "lookback without being covered by a digest"
                )
    return sorted(set(problems))


def deliveries_all_sent(config: Config) -> list[str]:
    """After recovery with healthy receivers, every queued delivery is recorded as sent."""
    problems: list[str] = []
    with _reader(config) as store:
        targets = {
            profile.name: {target.label for target in profile.deliver} for profile in config.digests
        }
        rows = store.sql.query(
            f"SELECT d.id, d.profile, {store.sql.joined('v.target')} AS targets "
            "FROM digests d LEFT JOIN deliveries v ON v.digest_id = d.id GROUP BY d.id, d.profile"
        )
        for row in rows:
            queued = set((row["targets"] or "").split("\x1f")) - {""}
            missing = targets.get(row["profile"], set()) - queued
            if missing:
                problems.append(f"digest {row['id']} has no delivery queued for {sorted(missing)}")
        for row in store.sql.query("SELECT digest_id, target, status FROM deliveries"):
            if row["status"] != "sent":
                problems.append(
                    f"delivery of {row['digest_id']} to {row['target']}: {row['status']}"
                )
    return problems


def delivered_exactly_once(
    received: Mapping[str, Iterable[str]], digest_ids: Iterable[str], allowed_duplicates: int = 0
) -> list[str]:
    """Invariant 2 for one receiver: `received` maps a target label to the digest ids that
    arrived there, in order; each stored digest arrives once, and at most
    `allowed_duplicates` messages (those in flight at crashes) arrive twice."""
    problems: list[str] = []
    expected = set(digest_ids)
    for target, arrivals in received.items():
        counts = Counter(arrivals)
        for digest_id in sorted(expected - set(counts)):
            problems.append(f"{target}: digest {digest_id} never arrived")
        for digest_id in sorted(set(counts) - expected):
            problems.append(f"{target}: digest {digest_id} arrived but is not stored")
        twice = [digest_id for digest_id, n in counts.items() if n == 2]
        more = [digest_id for digest_id, n in counts.items() if n > 2]
        if more:
            problems.append(f"{target}: digests arrived more than twice: {sorted(more)}")
        if len(twice) > allowed_duplicates:
            problems.append(
                f"{target}: {len(twice)} digests arrived twice, at most {allowed_duplicates} "
                f"in flight at a crash may: {sorted(twice)}"
            )
    return problems


def stored_digest_ids(config: Config, profile: str | None = None) -> list[str]:
    """Every stored digest's id, oldest first; only `profile`'s when given."""
    where, params = ("WHERE profile = ?", [profile]) if profile else ("", [])
    query = f"SELECT id FROM digests {where} ORDER BY created_at, id"
    return [row["id"] for row in stored_rows(config, query, params)]


def trends_arrived(
    arrivals: Mapping[str, Sequence[str]], title: str, *, in_every: bool
) -> list[str]:
    """`arrivals` maps a receiver to the text of each message that arrived there. Each one
    names a trend titled `title...` (in_every), or at least one per receiver does; a
    receiver that got nothing is a violation either way."""
    problems: list[str] = []
    for receiver, texts in arrivals.items():
        with_trends = sum(title in text for text in texts)
        if not with_trends:
            problems.append(f"{receiver}: none of {len(texts)} messages has a trend {title!r}")
        elif in_every and with_trends < len(texts):
            problems.append(
                f"{receiver}: {len(texts) - with_trends} of {len(texts)} messages have no "
                f"trend {title!r}"
            )
    return problems
