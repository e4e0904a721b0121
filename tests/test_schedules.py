"""Daily, weekly, monthly and yearly digest schedules, under a controlled clock, in both
modes: `run --once` (a timer or cron; Runner.due_profiles over croniter's previous fire
time) and the daemon (APScheduler's CronTrigger). A monthly schedule used to fire once and
never again in once mode after the 9th, when the look-back stopped at 8 days."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.config import cron_trigger, parse_config
from core.items import NewItem
from core.store import Store
from daemon.cron import last_fire_time, next_fire_time
from daemon.runner import Runner

PARIS = ZoneInfo("Europe/Paris")


def at(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=PARIS)  # type: ignore[misc]


# schedule, a moment just after one firing, the next firing, a moment well after it
SCHEDULES = {
    "daily": ("0 7 * * *", at(2026, 3, 2, 7, 0, 30), at(2026, 3, 3, 7), at(2026, 3, 3, 9)),
    # 2026-03-02 is a Monday: cron's 1 is Monday (APScheduler's own 1 would be Tuesday).
    "weekly": ("0 7 * * 1", at(2026, 3, 2, 7, 5), at(2026, 3, 9, 7), at(2026, 3, 12, 12)),
    "monthly": ("0 7 1 * *", at(2026, 3, 1, 7, 5), at(2026, 4, 1, 7), at(2026, 4, 20, 12)),
    "yearly": ("0 9 1 1 *", at(2026, 1, 1, 9, 5), at(2027, 1, 1, 9), at(2027, 3, 1, 12)),
}


def config_text(tmp_path: Path, schedule: str) -> str:
    return f"""
storage: {{path: {tmp_path / "state" / "trendfinder.db"}}}
llm: {{api_key: ''}}
sources: [{{name: wire, url: 'http://127.0.0.1:9/feed'}}]
digests:
  - name: brief
    focus: news
    schedule: "{schedule}"
    timezone: Europe/Paris
    deliver: [{{kind: file}}]
"""


@pytest.mark.parametrize("kind", SCHEDULES)
def test_once_mode_finds_every_firing(kind: str, tmp_path: Path) -> None:
    schedule, fired, following, later = SCHEDULES[kind]
    config = parse_config(config_text(tmp_path, schedule), env={})
    profile = config.digests[0]
    now = [fired]
    with Store.open(config.storage.database) as store:
        runner = Runner(config, store, clock=lambda: now[0])
        store.add_items(
            "wire",
            [
                NewItem(
                    id="it_1",
                    url="https://wire.example/1",
                    title="Harbour bridge reopens after repair",
                    text="",
                    published=fired,
                    content_hash="h1",
                )
            ],
            fired,
        )
        runner.group()
        assert runner.due_profiles(fired) == [profile]  # never had a digest
        assert runner.digest(profile) is not None
        for moment, due in (
            (fired + timedelta(minutes=1), []),
            (following - timedelta(minutes=1), []),
            (following, [profile]),
            (later, [profile]),  # a late start still catches the missed firing up
        ):
            assert runner.due_profiles(moment) == due, moment


@pytest.mark.parametrize("kind", SCHEDULES)
def test_the_daemon_and_once_mode_agree_on_every_firing(kind: str, tmp_path: Path) -> None:
    schedule, fired, following, _ = SCHEDULES[kind]
    profile = parse_config(config_text(tmp_path, schedule), env={}).digests[0]
    trigger = cron_trigger(schedule, "Europe/Paris")  # what the daemon schedules with
    moment, firings = fired, []
    for _ in range(4):
        daemon_next = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        assert next_fire_time(profile, moment) == daemon_next
        assert last_fire_time(profile, daemon_next) == daemon_next
        assert last_fire_time(profile, daemon_next - timedelta(seconds=1)) == (
            firings[-1] if firings else last_fire_time(profile, fired)
        )
        firings.append(daemon_next)
        moment = daemon_next
    assert firings[0] == following


def count_runs(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def test_the_daemon_sweeps_on_real_triggers_and_an_idle_sweep_writes_nothing(
    tmp_path: Path,
) -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from daemon.scheduler import Daemon
    from daemon.systemd import Notifier

    config = parse_config(config_text(tmp_path, "0 7 1 * *"), env={})
    with Store.open(config.storage.database) as store:
        daemon = Daemon(tmp_path / "config.yaml", config, store, Notifier(environ={}))
        daemon._add_digest_jobs()
        daemon._add_sweeps()
        triggers = {job.id: type(job.trigger) for job in daemon.scheduler.get_jobs()}
        assert triggers == {
            "digest:brief": CronTrigger,
            "collect": IntervalTrigger,
            "deliver": IntervalTrigger,
        }
        # The source's one attempt fails (nothing listens on port 9): it backs off.
        assert daemon._collect() is not None
        runs = count_runs(config.storage.database)
        # Nothing is due now: the next sweeps neither fetch nor record a run.
        assert daemon._collect() is None and daemon._deliver() is None
        assert count_runs(config.storage.database) == runs
