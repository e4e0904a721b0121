"""A whole world for the reliability suite: loopback feeds, model, SMTP and Slack, a config
that uses them all, `trendfinder run --once` as a subprocess, and every invariant checked
against what the receivers actually got and what the store file holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import psycopg
from faultworld import story_ids
from loopback import FeedServer, OpenAIServer, SlackReceiver, SMTPServer
from loopback.invariants import (
    delivered_exactly_once,
    deliveries_all_sent,
    no_item_vanished,
    store_is_healthy,
    stored_digest_ids,
    trends_arrived,
)
from loopback.openai_server import ChatRequest
from processes import cli_env, storage_setting

from core.config import Config, load_config
from core.store.postgres import lock_key

OUTLETS = ("wire", "ledger", "herald")
# Each round publishes these stories; most are told by several outlets in their own words,
# and one article is syndicated: the same link in two feeds.
STORIES = (
    ("CloudNimbus outage takes down thousands of sites", OUTLETS),
    ("EU lawmakers approve the AI Act in a final vote", ("wire", "herald")),
    ("Chipmaker Fabrion opens a new factory in Ohio", ("ledger", "herald")),
    ("Local marathon draws a record crowd", ("herald",)),
)
SYNDICATED = ("wire", "ledger")
RUN_TIMEOUT = 90.0  # seconds any one `run --once` may take before the test calls it a hang
# How every trend model_answer makes is titled: what each message that arrives must show.
TREND = "Trend number "


def model_answer(chat: ChatRequest) -> dict[str, Any]:
    """A good structured answer citing the first stories of the dump, as a model would."""
    refs = story_ids(chat)[:3]
    return {
        "nothing_notable": False,
        "trends": [
            {
                "title": f"{TREND}{number}",
                "summary": "What the cited items report.",
                "why_it_matters": "It matters to this reader.",
                "evidence": [ref],
                "score": 90 - 10 * number,
                "status": "new",
            }
            for number, ref in enumerate(refs, start=1)
        ],
    }


@dataclass(frozen=True)
class Ran:
    command: tuple[str, ...]
    returncode: int
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Running:
    process: subprocess.Popen[bytes]
    log: Path
    started: float


class Trendfinder:
    """`trendfinder` subprocesses on one config, each bounded in time and leaving no process."""

    def __init__(self, config_path: Path, store_url: str | None = None) -> None:
        """`store_url`: the Postgres database the config's `storage.url` names, if any."""
        self.config_path = config_path
        self.folder = config_path.parent
        self.store_url = store_url
        self.runs = 0

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "daemon", "--config", str(self.config_path), *args]

    def start(
        self,
        *args: str,
        crash_at: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Running:
        """`trendfinder ARGS` in its own session, so every process it starts can be found.
        Its stderr goes to a file: a process left behind cannot hold up reading it."""
        extra = {"TRENDFINDER_CRASH_AT": crash_at} if crash_at else {}
        self.runs += 1
        log = self.folder / f"run-{self.runs}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                self.command(*args),
                cwd=self.folder,
                env=cli_env(**extra),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )
        return Running(process, log, time.monotonic())

    def wait_working(self, running: Running, timeout: float = 30.0) -> float:
        """Wait until `run` holds the daemon's lock (its imports are done and the work
        begins); the seconds since it started."""
        with self._lock_holder() as holds:
            while time.monotonic() - running.started < timeout and running.process.poll() is None:
                if holds(running.process.pid):
                    break
                time.sleep(0.005)
        return time.monotonic() - running.started

    @contextmanager
    def _lock_holder(self) -> Iterator[Callable[[int], bool]]:
        """A test of whether process `pid` holds the daemon's lock: on SQLite the state
        directory's lock file names it; on Postgres the store's "daemon" advisory lock is
        held (one trendfinder runs at a time in these tests, so the holder is `pid`)."""
        if self.store_url is None:
            lock = self.folder / "state" / "trendfinder.lock"

            def in_file(pid: int) -> bool:
                try:
                    return lock.read_text().strip() == str(pid)
                except OSError:
                    return False

            yield in_file
            return
        with psycopg.connect(self.store_url, autocommit=True) as conn:
            # An advisory lock's 64-bit key is split over classid (high) and objid (low).
            held = (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s"
            )
            key = lock_key("daemon")
            yield lambda pid: bool(conn.execute(held, [key]).fetchone()[0])

    def finish(self, running: Running) -> Ran:
        """Wait for it within RUN_TIMEOUT, and for every process of its session to end."""
        process = running.process
        try:
            process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(
                f"still running after {RUN_TIMEOUT:.0f}s:\n{running.log.read_text()}"
            ) from None
        seconds = time.monotonic() - running.started
        deadline = time.monotonic() + 10
        while (left := session_processes(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(
                f"processes outlived trendfinder: {left}\n{running.log.read_text()}"
            )
        return Ran(
            tuple(map(str, process.args)), process.returncode, running.log.read_text(), seconds
        )

    def run(
        self,
        *args: str,
        crash_at: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Ran:
        return self.finish(self.start(*args, crash_at=crash_at, preexec_fn=preexec_fn))

    def recover(self, attempts: int = 4) -> list[Ran]:
        """Plain `run --once` until one exits 0 (a delivery waiting out its backoff may need
        a second run); every one of them must end in time and without a traceback."""
        runs: list[Ran] = []
        for _ in range(attempts):
            ran = self.run("run", "--once")
            runs.append(ran)
            assert "Traceback" not in ran.stderr, ran.stderr
            if ran.returncode == 0:
                return runs
            assert ran.returncode == 1, ran.stderr
            time.sleep(1.1)  # the outbox's first backoff (delivery.backoff: 1s)
        raise AssertionError(
            "no recovery run succeeded:\n" + "\n---\n".join(run.stderr for run in runs)
        )


class World(Trendfinder):
    """Start with `with World(tmp_path) as world:`; `publish()` adds a round of stories."""

    def __init__(
        self,
        folder: Path,
        *,
        model_delay: float = 0.0,
        busy_timeout: str = "30s",
        alerts: bool = False,
        store_url: str | None = None,
    ) -> None:
        super().__init__(folder / "config.yaml", store_url)
        self.busy_timeout = busy_timeout
        # With alerts, brief alerts on a story three outlets carry (CloudNimbus, each round).
        self.alerts = alerts
        self.feeds = FeedServer()
        self.model = OpenAIServer()
        self.smtp = SMTPServer()
        self.slack = SlackReceiver()
        self.model_delay = model_delay
        self.entries: dict[str, list[str]] = {outlet: [] for outlet in OUTLETS}
        self.served: list[str] = []
        self.rounds = 0

    def __enter__(self) -> World:
        for server in (self.feeds, self.model, self.smtp, self.slack):
            server.start()
        self.model.set_default(model_answer, delay=self.model_delay)
        self.config_path.write_text(self._config_text())
        self.publish()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        for server in (self.slack, self.smtp, self.model, self.feeds):
            server.stop()
        if exc is None:
            self.model.check_answers()

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def _config_text(self) -> str:
        sources = "\n".join(
            f"  - {{name: {outlet}, url: '{self.feeds.url_for(f'/{outlet}.xml')}', interval: 1s}}"
            for outlet in OUTLETS
        )
        llm = {
            "model": "o1",
            "base_url": self.model.base_url,
            "api_key": "sk-test",
            "backoff": "1s",
            "run_budget": "30s",
            "timeout": "20s",
        }
        alerts = "\n    alerts: {rules: [{kind: story, outlets: 3}]}" if self.alerts else ""
        return f"""
storage: {{{storage_setting(self.store_url)}, busy_timeout: {self.busy_timeout}}}
llm: {json.dumps(llm)}
delivery: {{max_attempts: 8, backoff: 1s}}
sources:
{sources}
digests:
  - name: brief
    focus: Engineers who run web services and follow technology regulation.
    schedule: '* * * * * *'{alerts}
    deliver:
      - {{kind: email, name: mail, host: 127.0.0.1, port: {self.smtp.port}, security: none,
          sender: trendfinder@example.org, to: [reader@example.org], timeout: 10}}
      - {{kind: slack, name: team, webhook_url: '{self.slack.url_for("/services/T/B/team")}',
          timeout: 10}}
      - {{kind: file, directory: out}}
  - name: wire-watch
    focus: Editors who follow what the wire reports.
    sources: [wire]
    schedule: '* * * * * *'
    deliver:
      - {{kind: slack, name: desk, webhook_url: '{self.slack.url_for("/services/T/B/desk")}',
          timeout: 10}}
      - {{kind: file, directory: out}}
"""

    # The world's feeds ---------------------------------------------------------------------

    def publish(self) -> None:
        """A new round of stories in every outlet's feed (the older entries stay listed)."""
        self.rounds += 1
        number = self.rounds
        when = format_datetime(datetime.now(UTC) - timedelta(minutes=5))
        for story, (title, outlets) in enumerate(STORIES):
            for outlet in outlets:
                link = self.feeds.url_for(f"/{outlet}/r{number}/s{story}")
                self._entry(outlet, f"{title} (round {number}, {outlet})", link, when)
        shared = self.feeds.url_for(f"/syndicated/r{number}")
        for outlet in SYNDICATED:
            self._entry(outlet, f"Syndicated analysis of the week, round {number}", shared, when)
        for outlet in OUTLETS:
            items = "\n".join(self.entries[outlet])
            self.feeds.add(
                f"/{outlet}.xml",
                f'<?xml version="1.0"?><rss version="2.0"><channel><title>{outlet}</title>'
                f"<link>https://{outlet}.example.org/</link>{items}</channel></rss>",
            )

    def _entry(self, outlet: str, title: str, link: str, when: str) -> None:
        if link not in self.served:
            self.served.append(link)
        text = escape(f"{title}. " * 6)
        self.entries[outlet].append(
            f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
            f"<guid>{escape(link)}</guid><pubDate>{when}</pubDate>"
            f"<description>{text}</description></item>"
        )

    # What arrived ---------------------------------------------------------------------------

    def received(self) -> dict[str, dict[str, list[str]]]:
        """Per profile, per target label: the digest ids that arrived there, in order."""
        mail = []
        message_ids: dict[str, set[str]] = {}
        for message in self.smtp.messages:
            digest_id = str(message.message["X-Trendfinder-Digest"])
            mail.append(digest_id)
            message_ids.setdefault(digest_id, set()).add(str(message.message["Message-ID"]))
        # A re-sent email must carry the same Message-ID, so a mail client folds it away.
        for digest_id, ids in message_ids.items():
            assert len(ids) == 1, f"digest {digest_id} mailed with Message-IDs {sorted(ids)}"
        slack: dict[str, list[str]] = {"team": [], "desk": []}
        for label, payload in self._slack_digests():
            slack[label].append(payload["blocks"][0]["block_id"].split(":")[1])
        files = {
            profile: sorted(
                json.loads(path.read_text())["id"]
                for path in (self.folder / "out" / profile).glob("*.json")
            )
            for profile in ("brief", "wire-watch")
        }
        return {
            "brief": {"mail": mail, "team": slack["team"], "file": files["brief"]},
            "wire-watch": {"desk": slack["desk"], "file": files["wire-watch"]},
        }

    def _slack_digests(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(webhook label, payload) of each accepted first message of a digest."""
        for post in self.slack.deliveries:
            if post.status != 200 or post.payload is None:
                continue
            if post.payload["blocks"][0]["block_id"].split(":")[2].startswith("1/"):
                yield post.path.rsplit("/", 1)[1], post.payload

    def arrived_texts(self) -> dict[str, list[str]]:
        """Per target: the text of each message that arrived (a Slack digest's first part)."""
        slack: dict[str, list[str]] = {"team": [], "desk": []}
        for label, payload in self._slack_digests():
            slack[label].append(json.dumps(payload))
        files = {
            f"{profile}/file": [
                path.read_text() for path in (self.folder / "out" / profile).glob("*.json")
            ]
            for profile in ("brief", "wire-watch")
        }
        return {"mail": [message.text for message in self.smtp.messages], **slack, **files}

    def duplicates(self) -> int:
        """Messages that arrived more than once, over every target."""
        return sum(
            len(arrivals) - len(set(arrivals))
            for targets in self.received().values()
            for arrivals in targets.values()
        )

    def violations(self, allowed_duplicates: Mapping[str, int] | int = 0) -> list[str]:
        """Invariants 1-3 (4 is checked by every run), and every message that arrived shows
        the model's trends: empty when they all hold."""
        config = self.config
        problems = store_is_healthy(config)
        problems += no_item_vanished(config, self.served)
        problems += deliveries_all_sent(config)
        # An alert is the statistical detector's, not the model's: with alerts, the model's
        # trends must arrive at every receiver, not in every message.
        problems += trends_arrived(self.arrived_texts(), TREND, in_every=not self.alerts)
        for profile, targets in self.received().items():
            ids = stored_digest_ids(config, profile)
            for label, arrivals in targets.items():
                allowed = (
                    allowed_duplicates
                    if isinstance(allowed_duplicates, int)
                    else allowed_duplicates.get(label, 0)
                )
                problems += delivered_exactly_once({f"{profile}/{label}": arrivals}, ids, allowed)
        return problems


def session_processes(session: int) -> list[str]:
    """Live processes (not zombies) of the session `session` leads: `pid command` each."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        command, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        fields = rest.split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry.name} {command}")
    return found
