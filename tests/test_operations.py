"""Running unattended: the one-shot lock, the shipped units, the log lines, a missed digest."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from feedfarm import FeedFarm
from processes import cli_env, daemon, printed_cron_line, storage_setting, wait_for

from core.config import load_config, parse_config
from daemon import logs

REPO = Path(__file__).resolve().parents[1]


def once_config(folder: Path, farm: FeedFarm, store_url: str | None = None) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{{storage_setting(store_url)}}}
sources:
  - {{name: slow, url: '{farm.url(0)}'}}
digests:
  - name: brief
    focus: Technology news.
    deliver:
      - {{kind: file, directory: out}}
"""
    )
    return path


def test_two_one_shot_runs_started_together_one_runs_the_other_exits_75(tmp_path, store_url):
    # The feed answers slowly, so the first run still holds the lock when the second starts.
    with FeedFarm(feeds=1, delay=3.0) as farm:
        config = once_config(tmp_path, farm, store_url)
        command = [sys.executable, "-m", "daemon", "--config", str(config), "run", "--once"]
        runs = [
            subprocess.Popen(
                command, cwd=tmp_path, env=cli_env(), stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        # Who was still running when each one ended (within 2 minutes: on a loaded machine
        # the imports alone take many seconds).
        others_running: dict[int, bool] = {}
        for _ in range(2400):
            for index, run in enumerate(runs):
                if index not in others_running and run.poll() is not None:
                    others_running[index] = runs[1 - index].poll() is None
            if len(others_running) == 2:
                break
            time.sleep(0.05)
        results = [(run.wait(timeout=60), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 75], results
    loser = next(index for index, (code, _) in enumerate(results) if code == 75)
    # It names what it found locked: the state directory, or the Postgres store.
    locked = str(tmp_path / "state") if store_url is None else load_config(config).storage.location
    assert "already working on" in results[loser][1] and locked in results[loser][1]
    # The second copy gave up at once instead of waiting for the first.
    assert others_running[loser], results
    assert len(list((tmp_path / "out" / "brief").glob("*.json"))) == 1


def test_a_digest_missed_while_the_machine_slept_runs_once_on_wake(tmp_path, store_url):
    with FeedFarm(feeds=1) as farm:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
storage: {{{storage_setting(store_url)}}}
sources:
  - {{name: one, url: '{farm.url(0)}', interval: 1h}}
digests:
  - name: brief
    focus: Technology news.
    schedule: "* * * * * *"
    deliver:
      - {{kind: file, directory: out}}
"""
        )
        with daemon(config) as run:
            wait_for(lambda: "digest:brief: nothing new" in run.log(), "the schedule", run)
            # SIGSTOP freezes the process as a suspend would: five slots pass unseen.
            run.signal(signal.SIGSTOP)
            time.sleep(5.5)
            lines_before = len(run.lines)
            run.signal(signal.SIGCONT)
            woke = time.monotonic()
            time.sleep(0.9)
            after_wake = [line for line in run.lines[lines_before:] if "digest:brief:" in line]
            elapsed = time.monotonic() - woke
            run.signal(signal.SIGTERM)
            assert run.process.wait(timeout=15) == 0
    # Once for the missed slots, plus at most the regular slot that follows the wake.
    assert 1 <= len(after_wake) <= 1 + int(elapsed) + 1, after_wake


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    return found


def printed_unit(name: str, folder: Path) -> Path:
    """`trendfinder service print NAME` saved to a file, with ExecStart (which
    `systemd-analyze verify` checks for) pointing at an executable that exists."""
    executable = folder / "trendfinder"
    executable.write_text(f'#!/bin/sh\nexec {sys.executable} -m daemon "$@"\n')
    executable.chmod(0o755)
    printed = subprocess.run(
        [str(executable), "service", "print", name],
        cwd=folder,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    path = folder / "units" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={executable}", printed))
    return path


def test_shipped_units_verify_and_the_service_scores_2_or_better(tmp_path):
    analyze = systemd_analyze()
    units = [
        printed_unit(name, tmp_path)
        for name in (
            "trendfinder.service",
            "trendfinder-once.service",
            "trendfinder-worker@.service",
            "trendfinder-scheduler.service",
            "trendfinder.timer",
        )
    ]
    verify = subprocess.run(
        [analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0, verify.stderr
    assert "trendfinder" not in verify.stderr, verify.stderr
    for unit in units[:4]:
        security = subprocess.run(
            [analyze, "security", "--offline=true", "--threshold=20", str(unit)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert security.returncode == 0, security.stdout + security.stderr
        score = float(
            security.stdout.split("Overall exposure level for")[1].split(":")[1].split()[0]
        )
        assert score <= 2.0, security.stdout


def test_the_cron_line_runs_the_one_shot_mode():
    line = printed_cron_line()
    fields = line.split(maxsplit=5)
    assert fields[:5] == ["*/15", "*", "*", "*", "*"]
    assert "trendfinder --config" in fields[5] and "run --once" in fields[5]


SECRETS = {
    "OPENAI_API_KEY_VALUE": "sk-proj-abcdefghijklmnop0123456789",
    "FIRECRAWL_KEY": "fc-0a1b2c3d4e5f",
    "SMTP_PASSWORD": "correct horse battery staple",
    "SLACK_WEBHOOK_URL": "https://hooks.example.com/services/T000/B000/XXXXXXXXXXXX",
}


def secret_config():
    return parse_config(
        """
llm: {api_key: '${OPENAI_API_KEY_VALUE}'}
firecrawl: {api_key: '${FIRECRAWL_KEY}'}
sources: [{name: a, url: 'https://example.com/feed'}]
digests:
  - name: brief
    focus: News.
    deliver:
      - {kind: email, host: smtp.example.com, username: me, password: '${SMTP_PASSWORD}',
         sender: me@example.com, to: [you@example.com]}
      - {kind: slack, webhook_url: '${SLACK_WEBHOOK_URL}'}
""",
        env=SECRETS,
    )


@pytest.mark.parametrize("json_format", [False, True])
def test_secrets_from_the_config_never_reach_the_log(json_format, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.setup(json_format=json_format)
    logs.hide_secrets(secret_config())
    log = logging.getLogger("trendfinder")
    log.warning("model call with key %s failed", SECRETS["OPENAI_API_KEY_VALUE"])
    log.warning("firecrawl rejected %s", SECRETS["FIRECRAWL_KEY"])
    log.error("SMTP login refused for me/%s", SECRETS["SMTP_PASSWORD"])
    try:
        raise ConnectionError(f"POST {SECRETS['SLACK_WEBHOOK_URL']} failed\nsecond line")
    except ConnectionError:
        log.exception("delivery to slack failed")
    log.info(
        "fetching https://user:hunter2pass@example.com/feed with "
        "Authorization: Bearer abcdefgh12345678"
    )
    logging.shutdown()
    written = stream.getvalue()
    lines = written.splitlines()
    # One line per event, each of them stripped of every secret.
    assert len(lines) == 5, written
    for secret in [*SECRETS.values(), "hunter2pass", "abcdefgh12345678"]:
        assert secret not in written
    assert "***" in lines[0] and "delivery to slack failed" in lines[3]
    if json_format:
        assert json.loads(lines[3])["level"] == "error"
    else:
        assert "ConnectionError" in lines[3]


def test_status_reads_a_store_the_daemon_is_using(tmp_path, store_url):
    with FeedFarm(feeds=2) as farm:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
storage: {{{storage_setting(store_url)}}}
sources:
  - {{name: one, url: '{farm.url(0)}', interval: 1s}}
  - {{name: gone, url: '{farm.base}/missing.xml', interval: 1s}}
digests:
  - name: brief
    focus: Technology news.
    deliver:
      - {{kind: file, directory: out}}
"""
        )
        with daemon(config) as run:
            wait_for(lambda: "cycle:" in run.log(), "the first cycle", run)
            status = subprocess.run(
                [sys.executable, "-m", "daemon", "--config", str(config), "status"],
                cwd=tmp_path,
                env=cli_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            run.signal(signal.SIGTERM)
            assert run.process.wait(timeout=15) == 0
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert "sources: 2 configured, 1 failing" in text
    assert "  gone: " in text and "next try 20" in text
    assert "brief: 0 items waiting; last digest 20" in text
    assert "model spend: today $0.0000" in text
    if store_url is None:
        assert os.path.getsize(tmp_path / "state" / "trendfinder.db") > 0


@pytest.mark.parametrize("command", [["collect"], ["digest"], ["run", "--once"]])
def test_commands_that_do_the_daemons_work_wait_for_no_one_and_exit_75(tmp_path, capsys, command):
    from daemon.cli import main
    from daemon.lock import StateLock

    with FeedFarm(feeds=1) as farm:
        config = once_config(tmp_path, farm)
        (tmp_path / "state").mkdir()
        with StateLock(tmp_path / "state"):
            assert main(["--config", str(config), *command]) == 75
        assert "already working on" in capsys.readouterr().err
        # A dry run only previews, so it runs beside the daemon.
        with StateLock(tmp_path / "state"):
            assert main(["--config", str(config), "digest", "--dry-run"]) == 0
