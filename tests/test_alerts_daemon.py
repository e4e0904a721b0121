"""Alerts end to end, in the long-running daemon and in once mode: feeds on 127.0.0.1 whose
outlets all carry the same stories, a profile with a story rule, and the alert arriving as a
file beside the scheduled digest, once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from feedfarm import FeedFarm
from processes import daemon, run_cli, wait_for


def write_config(folder: Path, farm: FeedFarm) -> Path:
    sources = "\n".join(
        f"  - {{name: outlet{n}, url: '{farm.url(n)}', interval: 1s}}" for n in range(farm.feeds)
    )
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{path: state/trendfinder.db}}
llm: {{api_key: ''}}
sources:
{sources}
digests:
  - name: desk
    focus: Editors watching breaking news.
    schedule: "0 7 * * *"
    alerts:
      rules: [{{kind: story, outlets: 3, window: 2h}}]
    deliver:
      - {{kind: file, directory: out}}
"""
    )
    return path


def alerts(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("alert-*.json"))]


def test_the_daemon_alerts_on_stories_four_outlets_carry_once_each_within_the_hourly_cap(tmp_path):
    with FeedFarm(feeds=4, items_per_feed=6, generation=6) as farm:
        config = write_config(tmp_path, farm)
        with daemon(config) as run:
            out = tmp_path / "out" / "desk"
            # Six stories, four outlets each: three alerts, the hourly cap.
            wait_for(lambda: len(alerts(out)) == 3, "three alerts", run, timeout=60)
            first = alerts(out)
            assert {body["kind"] for body in first} == {"alert"}
            assert all(len(body["trends"][0]["coverage"]["followed"]) >= 2 for body in first)
            # More cycles without new outlets: the same stories do not alert again.
            wait_for(lambda: run.log().count("collect:") >= 4, "more collect cycles", run, 60)
            assert len(alerts(out)) == len(first)
            run.signal(15)
            assert run.process.wait(timeout=30) == 0, run.log()
    assert "Traceback" not in run.log()


def test_once_mode_alerts_and_a_second_run_does_not_repeat_it(tmp_path):
    with FeedFarm(feeds=4, items_per_feed=6, generation=6) as farm:
        config = write_config(tmp_path, farm)

        def once() -> subprocess.CompletedProcess[str]:
            return run_cli(config, "run", "--once", timeout=120)

        first = once()
        assert first.returncode == 0, first.stderr
        out = tmp_path / "out" / "desk"
        sent = alerts(out)
        assert sent and {body["kind"] for body in sent} == {"alert"}
        # ...beside the scheduled digest, which the alert does not stand in for.
        assert [path for path in out.glob("*.json") if not path.name.startswith("alert-")]
        second = once()
        assert second.returncode == 0, second.stderr
        assert len(alerts(out)) == len(sent)
