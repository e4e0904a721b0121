"""Alerts between digests, on a real store and a real file target: a story bursting across
outlets alerts once, again only when its outlets double, within the hourly cap; alerts go
through the outbox and never stand in for the scheduled digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import parse_config
from core.items import NewItem
from core.store import Store
from daemon import cli
from daemon.runner import Runner

# Half an hour ago, so `alerts test` (on the wall clock) sees the same stories as the runner.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
OUTLETS = ("wire", "herald", "ledger", "post", "times", "globe", "daily")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def config_text(tmp_path: Path, rules: str, per_hour: int = 3) -> str:
    sources = "\n".join(
        f"  - {{name: {name}, url: 'https://{name}.example/feed'}}" for name in OUTLETS
    )
    return f"""
storage: {{path: {tmp_path / "state" / "t.db"}}}
sources:
{sources}
digests:
  - name: desk
    focus: Editors watching breaking news.
    schedule: '0 7 * * *'
    alerts:
      per_hour: {per_hour}
      rules: {rules}
    deliver:
      - {{kind: file, directory: {tmp_path / "out"}}}
"""


@pytest.fixture
def world(tmp_path):
    def make(rules: str = "[{kind: story, outlets: 3}]", per_hour: int = 3):
        (tmp_path / "config.yaml").write_text(config_text(tmp_path, rules, per_hour))
        config = parse_config(config_text(tmp_path, rules, per_hour), tmp_path / "config.yaml")
        store = Store.open(config.storage.database)
        clock = Clock()
        return Runner(config, store, clock), store, clock

    made: list[Store] = []

    def tracked(*args, **kwargs):
        runner, store, clock = make(*args, **kwargs)
        made.append(store)
        return runner, store, clock

    yield tracked
    for store in made:
        store.close()


def publish(store: Store, clock: Clock, outlet: str, story: str, minutes: float) -> None:
    """`outlet` reports `story`, `minutes` after T0 (its own article, its own words)."""
    clock.now = T0 + timedelta(minutes=minutes)
    slug = story.lower().replace(" ", "-")
    item = NewItem(
        id=f"https://{outlet}.example/{slug}",
        url=f"https://{outlet}.example/{slug}",
        title=f"{story}: {outlet} reports",
        text=f"{story}. Officials confirmed the {story.lower()} this morning.",
        published=clock.now,
        content_hash=f"{outlet}-{slug}",
    )
    store.add_items(outlet, [item], clock.now)


def alert_rows(store: Store) -> list[dict]:
    return list(store.db.query("SELECT * FROM alerts ORDER BY id"))


def test_a_bursting_story_alerts_once_through_the_outbox_and_again_when_its_outlets_double(
    world, tmp_path
):
    runner, store, clock = world()
    story = "Dam breach floods Zorvath valley"
    for minutes, outlet in enumerate(OUTLETS[:2]):
        publish(store, clock, outlet, story, minutes * 5)
    runner.group()
    assert runner.alert() == []  # two outlets: not yet
    publish(store, clock, "ledger", story, 12)
    runner.group()
    fired = runner.alert()
    assert [alert.record.rule for alert in fired] == ["story"]
    assert store.deliveries("pending")  # queued in the same transaction as the alert
    assert runner.alert() == []  # once
    report = runner.deliver()
    assert report.deliveries_sent == 1
    files = list((tmp_path / "out" / "desk").glob("alert-*.json"))
    assert len(files) == 1
    body = json.loads(files[0].read_text())
    assert body["kind"] == "alert"
    trend = body["trends"][0]
    assert trend["coverage"]["broke"]["source"] == "wire"
    assert [joined["source"] for joined in trend["coverage"]["followed"]] == ["herald", "ledger"]
    assert sum(hour["items"] for hour in trend["timeline"]["buckets"]) == 3
    # An alert does not stand in for the scheduled digest: the profile is still due.
    assert store.last_digest("desk") is None
    assert [profile.name for profile in runner.due_profiles(clock.now)] == ["desk"]
    # Two more outlets (5 of the 3 alerted): no material change; a sixth doubles it.
    for minutes, outlet in zip((20, 25), ("post", "times"), strict=True):
        publish(store, clock, outlet, story, minutes)
    runner.group()
    assert runner.alert() == []
    publish(store, clock, "globe", story, 30)
    runner.group()
    again = runner.alert()
    assert [alert.record.size for alert in again] == [6]
    assert [row["size"] for row in alert_rows(store)] == [3, 6]


def test_alerts_per_profile_per_hour_are_capped(world):
    runner, store, clock = world(per_hour=1)
    for number, story in enumerate(["Port strike halts Quellmark", "Bridge closes in Tarrowby"]):
        for minutes, outlet in enumerate(OUTLETS[:3]):
            publish(store, clock, outlet, story, number * 2 + minutes)
    runner.group()
    assert len(runner.alert()) == 1
    assert runner.alert() == []  # the other waits for the next hour
    clock.now += timedelta(hours=1, minutes=1)
    publish(store, clock, "post", "Bridge closes in Tarrowby", 70)
    runner.group()
    assert len(runner.alert()) == 1


def test_a_one_outlet_flood_never_alerts(world):
    runner, store, clock = world()
    for minutes in range(30):
        publish(store, clock, "wire", f"Live blog update {minutes}", minutes)
    runner.group()
    assert runner.alert() == []


def test_a_keyword_rule_alerts_on_a_story_naming_the_readers_terms(world):
    runner, store, clock = world("[{kind: keywords, match: [zorvath]}]")
    publish(store, clock, "wire", "Quiet day at the Zorvath observatory", 0)
    publish(store, clock, "herald", "Markets calm ahead of data", 1)
    runner.group()
    fired = runner.alert()
    assert [alert.record.rule for alert in fired] == ["keywords"]
    assert "'zorvath'" in fired[0].digest.trends[0].why_it_matters


def test_alerts_test_dry_runs_the_rules_and_status_lists_recent_alerts(world, tmp_path, capsys):
    runner, store, clock = world()
    for minutes, outlet in enumerate(OUTLETS[:3]):
        publish(store, clock, outlet, "Recall vote called in Kelsmere", minutes)
    runner.group()
    config = str(tmp_path / "config.yaml")
    assert cli.main(["--config", config, "alerts", "test", "--format", "md"]) == 0
    out = capsys.readouterr()
    assert "would alert desk (story:" in out.err
    assert "Recall vote called in Kelsmere" in out.out
    assert alert_rows(store) == []  # a dry run stores nothing and queues nothing
    assert store.deliveries() == []
    runner.alert()
    assert cli.main(["--config", config, "status"]) == 0
    assert "recent alerts:" in capsys.readouterr().out
