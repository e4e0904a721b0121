"""Soak: the long-running daemon on a seconds-scale schedule in a world where every server
fails at random a fraction of the time, then a clean stop, a recovery run and the invariants.

CI runs it for TRENDFINDER_SOAK_SECONDS (75 by default); a manual run can go longer:
TRENDFINDER_SOAK_SECONDS=600 python -m pytest -s tests/test_soak.py
The seed is printed (and TRENDFINDER_SOAK_SEED replays one); so are the figures.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from faultworld import (
    GrowingFeed,
    cli,
    good_answer,
    invariant_problems,
    invented_answer,
    write_world_config,
)
from loopback import FeedServer, OpenAIServer, SlackReceiver, SMTPServer
from loopback.invariants import stored_rows
from processes import daemon

from core.config import load_config

SOAK_SECONDS = float(os.environ.get("TRENDFINDER_SOAK_SECONDS", "75"))
SEED = int(os.environ.get("TRENDFINDER_SOAK_SEED", str(random.SystemRandom().randrange(10**6))))
# Each half-second, each of the four kinds of server gets a fault with this probability.
FAULT_CHANCE = 0.15
TICK = 0.5
FEEDS = 4
SCHEDULE = "*/3 * * * * *"
# RSS may move this much between the first and the last fifth after warm-up (allocator noise).
RSS_NOISE = 0.15
RSS_NOISE_FLOOR_KB = 12_000


class Chaos:
    """Every TICK, each server kind fails its next request(s) with FAULT_CHANCE (seeded)."""

    def __init__(
        self,
        rng: random.Random,
        feeds: list[GrowingFeed],
        model: OpenAIServer,
        smtp: SMTPServer,
        slack: SlackReceiver,
    ) -> None:
        self.rng = rng
        self.injected: Counter[str] = Counter()
        server = feeds[0].server

        def feed_fault() -> str:
            path = rng.choice(feeds).path
            kind, install = rng.choice(
                [
                    ("feed 500", lambda: server.add_status(path, 500, times=1)),
                    ("feed 429", lambda: server.add_status(path, 429, retry_after=2, times=1)),
                    ("feed timeout", lambda: server.add(path, b"<rss/>", delay=2, times=1)),
                    ("feed garbage", lambda: server.add(path, os.urandom(300), times=1)),
                    ("feed cut short", lambda: server.add_drop(path, b"<rss>" * 200, times=1)),
                ]
            )
            install()
            return kind

        def model_fault() -> str | None:
            if model.pending:  # one at a time: the model is asked once per digest
                return None
            kind, install = rng.choice(
                [
                    ("model 500", lambda: model.reply_error(500)),
                    ("model 429", lambda: model.reply_rate_limit(retry_after=1)),
                    ("model timeout", lambda: model.reply(good_answer, delay=2)),
                    ("model malformed", lambda: model.reply_malformed()),
                    ("model invented ids", lambda: model.reply(invented_answer)),
                    # Down for a while: the digest falls back to the offline analyzer.
                    ("model down", lambda: model.reply_error(503, times=8)),
                ]
            )
            install()
            return kind

        def smtp_fault() -> str:
            kind, install = rng.choice(
                [
                    ("smtp rcpt 450", lambda: smtp.fail_rcpt("450 4.2.0 Mailbox busy")),
                    ("smtp data 451", lambda: smtp.fail_data()),
                    ("smtp drop mid-DATA", lambda: smtp.drop_during_data()),
                ]
            )
            install()
            return kind

        def slack_fault() -> str:
            kind, install = rng.choice(
                [
                    ("slack 500", lambda: slack.fail(500)),
                    ("slack 503", lambda: slack.fail(503)),
                    ("slack 429", lambda: slack.fail_rate_limit(retry_after=1)),
                ]
            )
            install()
            return kind

        self.faults: list[Callable[[], str | None]] = [
            feed_fault,
            model_fault,
            smtp_fault,
            slack_fault,
        ]

    def tick(self) -> None:
        for fault in self.faults:
            if self.rng.random() < FAULT_CHANCE and (kind := fault()):
                self.injected[kind] += 1


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 300)
def test_soak_the_daemon_in_a_world_failing_at_random(tmp_path, store_url):
    print(f"\nsoak: seed {SEED} (TRENDFINDER_SOAK_SEED={SEED} replays it), {SOAK_SECONDS:.0f} s")
    rng = random.Random(SEED)
    with (
        FeedServer() as feed_server,
        OpenAIServer() as model,
        SMTPServer() as smtp,
        SlackReceiver() as slack_receiver,
    ):
        feeds = [GrowingFeed(feed_server, f"/feed{n}.xml", keep=2000) for n in range(FEEDS)]
        for feed in feeds:
            feed.publish(3)
        model.set_default(good_answer)
        config_path = write_world_config(
            tmp_path,
            {f"feed{n}": feed for n, feed in enumerate(feeds)},
            model,
            smtp,
            slack_receiver.webhook_url,
            schedule=SCHEDULE,
            run_budget="4s",
            store_url=store_url,
        )
        config = load_config(config_path)
        chaos = Chaos(rng, feeds, model, smtp, slack_receiver)
        samples: list[tuple[float, int]] = []
        with daemon(config_path) as run:
            started = time.monotonic()
            next_publish = started
            while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
                assert run.process.poll() is None, f"daemon exited:\n{run.log()[-5000:]}"
                if time.monotonic() >= next_publish:
                    rng.choice(feeds).publish()
                    next_publish += 0.5
                chaos.tick()
                if (kb := rss_kb(run.process.pid)) is not None:
                    samples.append((elapsed, kb))
                time.sleep(TICK)
            stop_started = time.monotonic()
            run.signal(signal.SIGTERM)
            code = run.process.wait(timeout=20)
            stop_seconds = time.monotonic() - stop_started
        assert code == 0, run.log()[-5000:]
        log = run.log()

        # The world heals; recovery runs until every delivery is sent (waiting out the
        # backoff of the last failures, bounded).
        for feed in feeds:
            feed.heal()
        model.clear_script()
        smtp.reset_faults()
        slack_receiver.reset_faults()
        recovery_runs = 0
        deadline = time.monotonic() + 90
        while True:
            args = ("run", "--once", "--all") if recovery_runs == 0 else ("run", "--once")
            recovery = cli(config_path, *args, timeout=120)
            recovery_runs += 1
            assert recovery.returncode in (0, 1), recovery.stderr
            left = stored_rows(
                config, "SELECT count(*) AS n FROM deliveries WHERE status != 'sent'"
            )
            if not left[0]["n"] or time.monotonic() > deadline:
                break
            threading.Event().wait(1)

        served = [link for feed in feeds for link in feed.published]
        problems = invariant_problems(
            config, served, smtp=smtp, slack_receiver=slack_receiver, files=tmp_path / "out"
        )

    digests = {
        str(row["analyzer"]): int(row["n"])
        for row in stored_rows(
            config, "SELECT analyzer, count(*) AS n FROM digests GROUP BY analyzer"
        )
    }
    [sent] = stored_rows(config, "SELECT count(*) AS n, sum(attempts - 1) AS r FROM deliveries")
    deliveries, retries = sent["n"], sent["r"]
    items = stored_rows(config, "SELECT count(*) AS n FROM items")[0]["n"]
    warm = [kb for t, kb in samples if t >= SOAK_SECONDS * 0.25]
    fifth = max(1, len(warm) // 5)
    rss_start, rss_end = statistics.median(warm[:fifth]), statistics.median(warm[-fifth:])
    print(
        f"soak: {SOAK_SECONDS:.0f} s, {items} items, digests {digests} "
        f"({sum(digests.values())} in all), {deliveries} deliveries, {retries} retries, "
        f"{sum(chaos.injected.values())} faults injected {dict(sorted(chaos.injected.items()))}, "
        f"{log.count('failed (will retry')} delivery failures logged, "
        f"RSS after warm-up {rss_start / 1024:.1f} MB -> end {rss_end / 1024:.1f} MB "
        f"(peak {max(kb for _, kb in samples) / 1024:.1f} MB), SIGTERM to exit "
        f"{stop_seconds:.1f} s, {recovery_runs} recovery run(s), "
        f"emails {len(smtp.messages)}, Slack messages {len(slack_receiver.messages)}"
    )
    assert problems == [], f"seed {SEED}: {problems[:20]}"
    assert "Traceback" not in log, f"seed {SEED}:\n{log[-5000:]}"
    assert rss_end <= rss_start + max(RSS_NOISE * rss_start, RSS_NOISE_FLOOR_KB), (
        f"seed {SEED}: RSS grew from {rss_start} kB to {rss_end} kB"
    )
    # Digests kept coming on the schedule despite the faults.
    assert sum(digests.values()) >= SOAK_SECONDS / 3 / 3
