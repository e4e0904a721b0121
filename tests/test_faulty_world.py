"""The long-running daemon in a faulty world: feeds, model, SMTP and Slack all misbehave.

`trendfinder run` runs as a subprocess on a seconds-scale schedule. The daemon must keep its
schedule, keep sending digests (offline, and labelled so, while the model is down), show
every failure in `status`, and once the world heals, deliver everything exactly once.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from faultworld import (
    GrowingFeed,
    cli,
    good_answer,
    invariant_problems,
    invented_answer,
    status,
    write_world_config,
)
from loopback import FeedServer, OpenAIServer, SlackReceiver, SMTPServer
from loopback.invariants import stored_rows
from processes import Daemon, daemon

from core.clock import from_text
from core.config import Config, load_config
from core.store import StoreError

SCHEDULE_SECONDS = 3
FEEDS = ("steady", "slow", "broken", "limited", "garbage")
FOREVER = 1_000_000


def digests(config: Config) -> list[dict[str, Any]]:
    """Stored digests, oldest first, read from the daemon's store as an operator would."""
    try:
        return stored_rows(
            config, "SELECT id, created_at, analyzer, body FROM digests ORDER BY created_at"
        )
    except StoreError:  # not created (or not migrated) yet
        return []


def pending_deliveries(config: Config) -> int:
    return len(stored_rows(config, "SELECT id FROM deliveries WHERE status != 'sent'"))


class World:
    """Publishes one item in every feed each second while a test waits for something."""

    def __init__(self, feeds: dict[str, GrowingFeed], run: Daemon) -> None:
        self.feeds = feeds
        self.run = run
        self._last_publish = 0.0

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() - self._last_publish >= 1:
                for feed in self.feeds.values():
                    feed.publish()
                self._last_publish = time.monotonic()
            if condition():
                return
            assert self.run.process.poll() is None, f"daemon exited ({what}):\n{self.run.log()}"
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; daemon log:\n{self.run.log()[-6000:]}")


def test_the_daemon_keeps_its_schedule_and_loses_nothing_in_a_faulty_world(tmp_path, store_url):
    with (
        FeedServer() as feed_server,
        OpenAIServer() as model,
        SMTPServer() as smtp,
        SlackReceiver() as slack_receiver,
    ):
        feeds = {name: GrowingFeed(feed_server, f"/{name}.xml") for name in FEEDS}
        for feed in feeds.values():
            feed.publish(3)
        model.set_default(good_answer)
        config_path = write_world_config(
            tmp_path,
            feeds,
            model,
            smtp,
            slack_receiver.webhook_url,
            schedule=f"*/{SCHEDULE_SECONDS} * * * * *",
            # Room for the scripted recovery (two 500s, a 429, a timeout) on a loaded machine.
            run_budget="15s",
            store_url=store_url,
        )
        config = load_config(config_path)

        # Feeds: one times out, one answers 500, one 429 with Retry-After, one garbage.
        feed_server.add(feeds["slow"].path, b"<rss/>", delay=3, times=FOREVER)
        feed_server.add_status(feeds["broken"].path, 500, times=FOREVER)
        feed_server.add_status(feeds["limited"].path, 429, retry_after=5, times=FOREVER)
        feed_server.add(feeds["garbage"].path, b"\x89PNG\r\n\x1a\n\x00\xff" * 50, times=FOREVER)
        # The model: transient errors it recovers from within the run's budget.
        model.reply_error(500, times=2)
        model.reply_rate_limit(retry_after=1)
        model.reply(good_answer, delay=3)  # longer than llm.timeout
        # SMTP: recipient refused, connection dropped mid-DATA, then DATA refused until healed.
        smtp.fail_rcpt("450 4.2.0 Mailbox busy", times=2)
        smtp.drop_during_data(times=2)
        smtp.fail_data(times=None)
        # Slack: rate limits waited out inline, then 500 until healed.
        slack_receiver.fail_rate_limit(retry_after=1, times=2)
        slack_receiver.fail(500, times=FOREVER)

        started = time.monotonic()
        with daemon(config_path) as run:
            world = World(feeds, run)
            # The model recovers from 500, 429 and a timeout: the first digest is its own.
            world.wait_for(lambda: digests(config), "the first digest", timeout=90)
            assert digests(config)[0]["analyzer"] == "o1"

            # Malformed JSON twice, then invented ids twice: offline, labelled as a fallback.
            model.reply_malformed(times=2)
            world.wait_for(lambda: model.pending == 0, "the malformed answers", timeout=90)
            # Then the model is down (503 until healed): digests keep coming, offline.
            # Queued together, so no digest can slip in between and get a good answer.
            count = len(digests(config))
            model.reply(invented_answer, times=2)
            model.reply_error(503, times=FOREVER)
            world.wait_for(
                lambda: len(digests(config)) >= count + 3, "offline digests", timeout=150
            )

            info = status(config_path)
            failing = {source["name"]: source for source in info["failing_sources"]}
            assert set(failing) == set(FEEDS) - {"steady"}
            assert all(source["next_attempt"] and source["error"] for source in failing.values())
            assert "HTTP 500" in failing["broken"]["error"]
            assert "429" in failing["limited"]["error"]
            # Retry-After: 5 (counted from the cycle's start) holds the next attempt well past
            # the 1 s interval after the last one; both read from one status, so a refetch in
            # between cannot race the check as comparing with the wall clock did.
            limited = failing["limited"]
            waited = from_text(limited["next_attempt"]) - from_text(limited["last_attempt"])
            assert waited.total_seconds() >= 3, limited
            waiting = {
                d["target"].partition(":")[0]: d
                for d in info["deliveries"]
                if d["status"] == "pending"
            }
            assert {"email", "slack"} <= set(waiting)
            assert "451" in waiting["email"]["last_error"]
            assert "HTTP 500" in waiting["slack"]["last_error"]
            assert all(d["next_attempt"] for d in waiting.values())
            assert "file" not in waiting  # one target failing never holds up the others

            # Heal the world: every digest still waiting goes out, and the model is back.
            healed_at = time.monotonic()
            for feed in feeds.values():
                feed.heal()
            model.clear_script()
            smtp.reset_faults()
            slack_receiver.reset_faults()
            world.wait_for(
                lambda: digests(config)[-1]["analyzer"] == "o1", "a model digest", timeout=30
            )
            world.wait_for(lambda: pending_deliveries(config) == 0, "every delivery", timeout=60)
            run.signal(signal.SIGTERM)
            assert run.process.wait(timeout=15) == 0, run.log()
        faulty_seconds = healed_at - started

        recovery = cli(config_path, "run", "--once", "--all", timeout=60)
        assert recovery.returncode == 0, recovery.stderr

        # The schedule was kept through the faults: the model's digests, then offline ones
        # for each kind of failure, then the model's again once healed (waited for above).
        stored = digests(config)
        analyzers = [row["analyzer"] for row in stored]
        fallbacks = [row for row in stored if row["analyzer"] == "offline (fallback from o1)"]
        # One fallback per kind of failure at least (how many the 503 spell produced depends
        # on timing), each saying why in its notes.
        assert len(fallbacks) >= 3, analyzers
        assert any("malformed" in row["body"] or "JSON" in row["body"] for row in fallbacks)
        assert any("no trend cited an id" in row["body"] for row in fallbacks)
        assert any("503" in row["body"] for row in fallbacks)
        times = [from_text(row["created_at"]) for row in stored]
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
        retries = sum(
            row["attempts"] - 1 for row in stored_rows(config, "SELECT attempts FROM deliveries")
        )
        print(
            f"faulty world: {faulty_seconds:.0f} s of faults, {len(stored)} digests "
            f"({len(fallbacks)} offline fallbacks), largest gap {max(gaps[:-1]):.0f} s, "
            f"{retries} delivery retries, {len(smtp.messages)} emails, "
            f"{len(slack_receiver.messages)} Slack messages"
        )
        log = run.log()
        assert "Traceback" not in log, log

        served = [link for feed in feeds.values() for link in feed.published]
        problems = invariant_problems(
            config, served, smtp=smtp, slack_receiver=slack_receiver, files=tmp_path / "out"
        )
        assert problems == [], problems
        # Every email that arrived once was refused or dropped first: none came twice.
        assert len(smtp.messages) == len(stored)
