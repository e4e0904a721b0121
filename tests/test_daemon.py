"""`trendfinder run` as a subprocess on a schedule of seconds, as systemd would run it."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from pathlib import Path

from feedfarm import FeedFarm
from loopback.invariants import store_is_healthy, stored_rows
from processes import Notifications, daemon, run_cli, storage_setting, wait_for

from core.config import load_config


def write_config(
    folder: Path, farm: FeedFarm, store_url: str | None, *, extra_profile: bool = False
) -> Path:
    """Two feeds collected every second; a digest every 2 s to a file target and an archive.

    The archive's directory sits under `blocked`, a plain file, until the test removes it,
    so its deliveries fail and are retried.
    """
    second = """
  - name: second
    focus: The same news, for a second reader.
    schedule: "*/2 * * * * *"
    deliver:
      - {kind: file, directory: out2}
"""
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{{storage_setting(store_url)}}}
llm: {{api_key: ''}}
delivery: {{backoff: 1s, max_attempts: 50}}
sources:
  - {{name: one, url: '{farm.url(0)}', interval: 1s}}
  - {{name: two, url: '{farm.url(1)}', interval: 1s}}
digests:
  - name: brief
    focus: Technology news for engineers.
    schedule: "*/2 * * * * *"
    deliver:
      - {{kind: file, directory: out}}
      - {{kind: file, name: archive, directory: blocked/archive}}
{second if extra_profile else ""}"""
    )
    return path


def digests(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def integrity_problems(db: sqlite3.Connection) -> list[str]:
    """PRAGMA integrity_check's findings, less SQLite 3.40.0-3.41.0's false "NULL value in"
    reports on WITHOUT ROWID tables whose key columns are not declared first."""
    problems = []
    for (line,) in db.execute("PRAGMA integrity_check"):
        if match := re.fullmatch(r"NULL value in (\w+)\.(\w+)", line):
            table, column = match.groups()
            query = f"SELECT count(*) FROM {table} WHERE {column} IS NULL"
            if db.execute(query).fetchone()[0] == 0:
                continue
        if line != "ok":
            problems.append(line)
    return problems


def covered(folder: Path) -> int:
    """Items covered by all the digests in `folder`."""
    return sum(json.loads(path.read_text())["stats"]["items"] for path in digests(folder))


def test_daemon_collects_digests_delivers_reloads_and_stops_cleanly(tmp_path, store_url):
    (tmp_path / "blocked").write_text("a file where the archive's directory should be")
    notify = Notifications()
    with FeedFarm(feeds=2) as farm:
        config = write_config(tmp_path, farm, store_url)
        with daemon(config, NOTIFY_SOCKET=notify.name, WATCHDOG_USEC="400000") as run:
            # systemd hears that the schedule is set, then regular watchdog pings.
            wait_for(lambda: "READY=1" in notify.fields(), "READY=1", run)
            wait_for(lambda: notify.fields().count("WATCHDOG=1") >= 3, "WATCHDOG=1", run)
            assert any(f.startswith("STATUS=2 sources (") for f in notify.fields())

            # The first cycle collects both feeds and delivers a digest.
            wait_for(lambda: digests(tmp_path / "out" / "brief"), "the first digest", run)
            first = json.loads(digests(tmp_path / "out" / "brief")[0].read_text())
            assert first["stats"]["items"] == 6 and first["profile"] == "brief"

            # A new item in each feed is collected at the sources' interval and digested on
            # the profile's schedule.
            farm.publish()
            wait_for(lambda: covered(tmp_path / "out" / "brief") == 8, "the new items' digest", run)

            # The archive target fails and is retried until it works.
            wait_for(lambda: "to archive failed (will retry" in run.log(), "a failed delivery", run)
            (tmp_path / "blocked").unlink()
            wait_for(
                lambda: len(digests(tmp_path / "blocked" / "archive" / "brief")) >= 2,
                "the archive's retried deliveries",
                run,
            )

            # The lock: a one-shot run while the daemon works exits at once with 75.
            once = run_cli(config, "run", "--once")
            assert once.returncode == 75, once.stderr
            assert "already working on" in once.stderr

            # SIGHUP with a changed config: a new profile starts delivering.
            write_config(tmp_path, farm, store_url, extra_profile=True)
            run.signal(signal.SIGHUP)
            wait_for(lambda: digests(tmp_path / "out2" / "second"), "the new profile's digest", run)
            assert "config reloaded" in run.log()

            # SIGHUP with a broken config: rejected with the reason; the old one keeps going.
            config.write_text(config.read_text().replace("interval: 1s", "interval: soon"))
            run.signal(signal.SIGHUP)
            wait_for(lambda: "config reload rejected" in run.log(), "the rejection", run)
            rejection = next(line for line in run.lines if "config reload rejected" in line)
            assert "sources[0].interval" in rejection
            before = len(digests(tmp_path / "out2" / "second"))
            farm.publish()
            wait_for(
                lambda: len(digests(tmp_path / "out2" / "second")) > before,
                "a digest after the rejected reload",
                run,
            )

            # SIGTERM: stops (within the wait's bound), exit 0, systemd told.
            run.signal(signal.SIGTERM)
            code = run.process.wait(timeout=15)
    notify.close()
    assert code == 0, run.log()
    assert "STOPPING=1" in notify.fields()
    assert "Traceback" not in run.log()

    write_config(tmp_path, farm, store_url, extra_profile=True)  # the broken one mended
    if store_url is None:
        with sqlite3.connect(tmp_path / "state" / "trendfinder.db") as db:
            assert integrity_problems(db) == []
    else:  # Postgres keeps its own files whole; what the invariants check there
        assert store_is_healthy(load_config(config)) == []
    runs = stored_rows(load_config(config), "SELECT kind, status FROM runs")
    kinds = {row["kind"] for row in runs}
    statuses = {row["status"] for row in runs}
    assert {"collect", "digest:brief", "digest:second", "deliver"} <= kinds
    assert "running" not in statuses

    status = run_cli(config, "status", "--json")
    info = json.loads(status.stdout)
    assert [d for d in info["deliveries"] if d["status"] == "failed"] == []
    assert {run["kind"] for run in info["runs"]} >= {"collect", "deliver", "digest:brief"}
    assert all(run["duration_s"] is not None for run in info["runs"])
    assert info["store"]["bytes"] > 0 and info["sources"] == {"configured": 2, "failing": 0}
    assert {p["name"] for p in info["profiles"]} == {"brief", "second"}
