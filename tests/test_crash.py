"""Crash anywhere: `run --once` killed with SIGKILL at every named crash point and at random
moments, then run again; nothing is lost, nothing but the message in flight arrives twice,
the store stays healthy, and no process hangs or outlives its run.

A longer manual run of the random kills: TRENDFINDER_KILL_ITERATIONS=500
TRENDFINDER_KILL_SECONDS=3600 (and TRENDFINDER_KILL_SEED to replay a failure).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from loopback import FeedServer
from loopback.invariants import no_item_vanished, store_is_healthy, stored_rows
from processes import storage_setting
from reliability import Trendfinder, World

from core.config import load_config
from core.crashpoints import POINTS, _armed
from core.store import StoreMissing
from sources.workers import POOL_MIN_SOURCES

REPO = Path(__file__).resolve().parents[1]

# Deliveries go out in this order in the world's first run: brief to mail, team (Slack) and
# file, then wire-watch to desk (Slack) and file.
# (TRENDFINDER_CRASH_AT, digests stored when it dies, the target whose message was in flight)
SCENARIOS = [
    ("collect.fetched", 0, None),
    ("collect.storing:2", 0, None),
    ("collect.stored", 0, None),
    ("group.assigning", 0, None),
    ("group.assigned", 0, None),
    ("model.request", 0, None),
    ("model.answered", 0, None),
    ("model.request:2", 1, None),
    ("digest.saving", 0, None),
    ("digest.inside_save", 0, None),
    ("digest.saved", 1, None),
    ("digest.saved:2", 2, None),
    ("deliver.sending", 2, None),
    ("deliver.part_sent", 2, "team"),
    ("deliver.sent", 2, "mail"),
    # Slack records each message as it is accepted, before the delivery as a whole: a
    # retry finds every part posted and sends nothing again.
    ("deliver.sent:2", 2, None),
    ("deliver.sent:3", 2, None),  # a file target rewrites the same files: nothing doubles
    ("deliver.sent:4", 2, None),
    ("deliver.recorded", 2, None),
]


# With brief's alert rule, its alert is stored first and delivered first (mail, team, file),
# before brief's and wire-watch's digests.
ALERT_SCENARIOS = [
    ("alert.saving", 0, None),
    ("alert.inside_save", 0, None),
    ("alert.saved", 1, None),
    ("deliver.sending", 3, None),
    ("deliver.sent", 3, "mail"),
    ("deliver.part_sent", 3, "team"),
    ("deliver.recorded", 3, None),
]


def stored_digests(world: World) -> int:
    return len(stored_rows(world.config, "SELECT id FROM digests"))


@pytest.mark.parametrize(("point", "digests_at_crash", "in_flight"), SCENARIOS)
def test_a_crash_at_a_named_point_loses_nothing_and_sends_only_the_message_in_flight_twice(
    tmp_path: Path, store_url: str | None, point: str, digests_at_crash: int, in_flight: str | None
) -> None:
    with World(tmp_path, store_url=store_url) as world:
        crashed = world.run("run", "--once", crash_at=point)
        assert crashed.returncode == -signal.SIGKILL, f"{point} never reached:\n{crashed.stderr}"
        # The store holds what was committed before the kill, and nothing half-written.
        assert stored_digests(world) == digests_at_crash
        recovery = world.recover()
        assert world.violations({in_flight: 1} if in_flight else 0) == []
        assert world.duplicates() == (1 if in_flight else 0)
    if point.startswith(("deliver.sending", "deliver.part_sent", "deliver.sent")):
        assert "was interrupted" in recovery[0].stderr


@pytest.mark.parametrize(("point", "digests_at_crash", "in_flight"), ALERT_SCENARIOS)
def test_an_alert_survives_a_crash_at_every_alert_stage_and_arrives_exactly_once(
    tmp_path: Path, store_url: str | None, point: str, digests_at_crash: int, in_flight: str | None
) -> None:
    with World(tmp_path, alerts=True, store_url=store_url) as world:
        crashed = world.run("run", "--once", crash_at=point)
        assert crashed.returncode == -signal.SIGKILL, f"{point} never reached:\n{crashed.stderr}"
        assert stored_digests(world) == digests_at_crash
        world.recover()
        assert world.violations({in_flight: 1} if in_flight else 0) == []
        assert world.duplicates() == (1 if in_flight else 0)
        # The alert fired once: one alert digest, one alert record, whatever the crash.
        kinds = Counter(
            row["kind"] for row in stored_rows(world.config, "SELECT kind FROM digests")
        )
        records = len(stored_rows(world.config, "SELECT digest_id FROM alerts"))
        assert kinds["alert"] == 1 and records == 1, (kinds, records)
        alert_id = next(i for i in world.received()["brief"]["mail"] if "-alert-" in i)
        assert all(alert_id in arrivals for arrivals in world.received()["brief"].values())


def test_every_crash_point_is_in_the_code_once_and_crashed_at_by_a_scenario() -> None:
    placed = Counter(
        name
        for folder in ("core", "daemon", "digests", "sources")
        for path in (REPO / folder).rglob("*.py")
        for name in re.findall(r'crash_point\("([^"]+)"\)', path.read_text())
    )
    assert placed == Counter(dict.fromkeys(POINTS, 1))
    scenarios = SCENARIOS + ALERT_SCENARIOS
    assert {spec.partition(":")[0] for spec, _, _ in scenarios} == set(POINTS)
    documented = (REPO / "DEVELOPERS.md").read_text()
    assert [name for name in POINTS if f"`{name}`" not in documented] == []


def test_a_crash_point_spec_counts_arrivals_and_a_wrong_one_names_the_points() -> None:
    assert _armed("") == {}
    assert _armed("deliver.sent:3") == {"deliver.sent": 3}
    for wrong in ("deliver.snet", "deliver.sent:0", "deliver.sent:x"):
        with pytest.raises(ValueError, match=r"collect\.fetched, collect\.storing"):
            _armed(wrong)


def where_it_died(world: World, pid: int) -> str:
    """Which step the killed run was in, from what it left in the lock file (SQLite; a
    Postgres advisory lock leaves nothing behind) and the store."""
    lock = world.folder / "state" / "trendfinder.lock"
    if world.store_url is None and (not lock.exists() or lock.read_text().strip() != str(pid)):
        return "starting"
    try:
        runs = stored_rows(world.config, "SELECT kind FROM runs WHERE status = 'running'")
        sending = stored_rows(world.config, "SELECT id FROM deliveries WHERE status = 'sending'")
    except StoreMissing:  # a Postgres store that the first run has not yet created
        return "starting"
    running = [row["kind"] for row in runs]
    if sending:
        return "delivering"
    if running:
        return running[-1].partition(":")[0]
    return "grouping or between steps"


# The random kills' CI setting; a longer manual run raises them through the environment.
KILL_ITERATIONS = int(os.environ.get("TRENDFINDER_KILL_ITERATIONS", "12"))
KILL_SECONDS = float(os.environ.get("TRENDFINDER_KILL_SECONDS", "60"))
MIN_KILL_ITERATIONS = min(KILL_ITERATIONS, 5)


# The budget bounds the loop; the last iteration and the checks need a few minutes beyond it.
@pytest.mark.timeout(KILL_SECONDS + 240)
def test_randomly_timed_kills_lose_nothing_and_send_at_most_the_messages_in_flight_twice(
    tmp_path: Path, store_url: str | None
) -> None:
    seed = int(os.environ.get("TRENDFINDER_KILL_SEED") or random.randrange(2**32))
    iterations, budget = KILL_ITERATIONS, KILL_SECONDS
    rng = random.Random(seed)
    landed: Counter[str] = Counter()
    kills = 0
    with World(tmp_path, model_delay=0.2, store_url=store_url) as world:
        running = world.start("run", "--once")
        startup = world.wait_working(running)
        first = world.finish(running)
        assert first.returncode == 0, first.stderr
        work = first.seconds - startup
        started = time.monotonic()
        for iteration in range(iterations):
            # The budget ends the loop only after the first few iterations: how many fit in
            # it depends on the machine's load, and a test asserts no speed.
            if iteration >= MIN_KILL_ITERATIONS and time.monotonic() - started > budget:
                break
            world.publish()
            running = world.start("run", "--once")
            # Most kills land while it works (some after it ended); a few while it starts.
            if rng.random() < 0.1:
                delay = rng.uniform(0, startup)
            else:
                delay = rng.uniform(0, 1.1 * work) + world.wait_working(running)
            try:
                running.process.wait(timeout=max(0.0, delay - (time.monotonic() - running.started)))
                landed["after it finished"] += 1
            except subprocess.TimeoutExpired:
                running.process.send_signal(signal.SIGKILL)
                kills += 1
            context = f"seed {seed} (TRENDFINDER_KILL_SEED), iteration {iteration}"
            if world.finish(running).returncode == -signal.SIGKILL:
                landed[where_it_died(world, running.process.pid)] += 1
            world.recover()
            assert world.violations(kills) == [], context
            assert world.duplicates() <= kills, context
        duplicates = world.duplicates()
        status = world.run("status")
    assert status.returncode == 0, status.stderr
    summary = (
        f"random kills: seed {seed}, {iteration + 1} iterations, {kills} kills "
        f"({dict(sorted(landed.items()))}), {duplicates} messages arrived twice"
    )
    print(summary)


def test_a_crash_while_worker_processes_parse_feeds_leaves_no_process_behind(
    tmp_path: Path, store_url: str | None, feed_server: FeedServer
) -> None:
    # Enough sources due at once that feeds are parsed in worker processes.
    count = POOL_MIN_SOURCES + 6
    served = []
    for number in range(count):
        links = [f"https://outlet{number}.example.org/story/{n}" for n in range(3)]
        served += links
        items = "".join(
            f"<item><title>Story {n}</title><link>{link}</link></item>"
            for n, link in enumerate(links)
        )
        feed_server.add(
            f"/f{number}.xml",
            f'<rss version="2.0"><channel><title>f{number}</title>{items}</channel></rss>',
        )
    sources = "\n".join(
        f"  - {{name: f{n}, url: '{feed_server.url_for(f'/f{n}.xml')}'}}" for n in range(count)
    )
    (tmp_path / "config.yaml").write_text(
        f"storage: {{{storage_setting(store_url)}}}\ncollect: {{parse_processes: 2}}\n"
        f"sources:\n{sources}\n"
    )
    world = Trendfinder(tmp_path / "config.yaml", store_url)
    crashed = world.run("run", "--once", crash_at=f"collect.fetched:{count // 2}")
    # finish() has waited for every process of the run's session: the parsing workers too.
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert world.run("run", "--once").returncode == 0
    config = load_config(tmp_path / "config.yaml")
    assert store_is_healthy(config) == []
    assert no_item_vanished(config, served) == []
