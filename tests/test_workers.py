"""The daemon's commands and the scale-out roles on a real Postgres, as real processes:
`run --once` and `run` as on SQLite; `trendfinder worker` and `trendfinder scheduler`
sharing one store, with the guarantees issue 16 asks for across workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from bench.uci import UCI_PATH, load_uci, stored_headline
from feedfarm import FeedFarm
from loopback import WebhookReceiver
from processes import cli_env, daemon, group_at_once, run_cli, wait_for

from core.clock import utcnow
from core.config import load_config
from core.store import Store

FEEDS = 24


def write_config(folder: Path, farm: FeedFarm, url: str, *, interval: str = "1h") -> Path:
    """FEEDS feeds on one host (at most two requests to it at a time), a digest every 2 s
    to a file target."""
    sources = "\n".join(
        f"  - {{name: feed{n}, url: '{farm.url(n)}', interval: {interval}}}" for n in range(FEEDS)
    )
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{url: '{url}'}}
llm: {{api_key: ''}}
collect: {{per_host: 2, allow_private_networks: true}}
sources:
{sources}
digests:
  - name: brief
    focus: Technology news for engineers.
    schedule: "*/2 * * * * *"
    deliver:
      - {{kind: file, directory: {folder / "out"}}}
"""
    )
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(config, *args, timeout=120, STATE_DIRECTORY=str(config.parent / "state"))


def env(folder: Path) -> dict[str, str]:
    return cli_env(STATE_DIRECTORY=str(folder / "state"))


def spawn(config: Path, command: list[str]) -> subprocess.Popen[str]:
    """A worker or scheduler process, its log in logs/ (one file per process)."""
    logs = config.parent / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / f"{time.monotonic_ns()}-{command[0]}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(config), *command],
            cwd=config.parent,
            env=env(config.parent),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


@contextmanager
def roles(config: Path, *commands: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Worker and scheduler processes (and any the test adds to the list), killed at the
    end whatever happened."""
    started: list[subprocess.Popen[str]] = []
    try:
        started += [spawn(config, command) for command in commands]
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


def until(condition: Callable[[], object], what: str, folder: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; logs:\n{logs(folder)[-6000:]}")


def logs(folder: Path) -> str:
    return "\n".join(path.read_text() for path in sorted((folder / "logs").glob("*.log")))


def one(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def delivered(folder: Path) -> list[Path]:
    return sorted((folder / "out" / "brief").glob("*.json"))


def test_run_once_and_the_daemon_work_on_postgres_as_on_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    with FeedFarm(feeds=FEEDS) as farm:
        config = write_config(tmp_path, farm, postgres_url, interval="1s")
        once = cli(config, "run", "--once")
        assert once.returncode == 0, once.stderr
        [digest] = delivered(tmp_path)
        assert json.loads(digest.read_text())["stats"]["items"] == FEEDS * 3
        status = cli(config, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["store"]["items"] == FEEDS * 3

        # The daemon on Postgres holds the store's lock: a one-shot run beside it exits 75,
        # from this machine or any other.
        farm.publish()
        with daemon(config, STATE_DIRECTORY=str(tmp_path / "state")) as run:
            wait_for(lambda: len(delivered(tmp_path)) == 2, "the daemon's digest", run)
            beside = cli(config, "run", "--once")
            assert beside.returncode == 75, beside.stderr
            assert "already working on the store at postgresql://" in beside.stderr
            # Nor do workers start beside it: they would fetch the same feeds again.
            worker = cli(config, "worker")
            assert worker.returncode == 75, worker.stderr
            assert "a `trendfinder run` daemon is working on the store" in worker.stderr
            run.signal(signal.SIGTERM)
            assert run.process.wait(timeout=20) == 0


def test_workers_and_two_schedulers_fetch_each_feed_once_politely_and_digest_once(
    tmp_path: Path, postgres_url: str
) -> None:
    with FeedFarm(feeds=FEEDS, delay=0.2) as farm:
        config = write_config(tmp_path, farm, postgres_url)
        commands = [["scheduler"], ["scheduler"], *[["worker"]] * 3]
        with roles(config, *commands):
            until(lambda: len(farm.requests) == FEEDS, "every feed fetched", tmp_path)
            until(lambda: delivered(tmp_path), "the digest delivered", tmp_path)
            # Several fires pass, with nothing new after the first: no second digest.
            time.sleep(5)
            status = cli(config, "status", "--json")
            # The one-process daemon refuses to run beside them.
            daemon_beside = cli(config, "run", "--once")
        assert status.returncode == 0, status.stderr
        assert daemon_beside.returncode == 75, daemon_beside.stderr
        assert "workers or schedulers" in daemon_beside.stderr
        # Three workers, two schedulers: each feed fetched once in its interval, never
        # more than per_host requests to the host at a time, one digest sent once.
        assert set(farm.requests.values()) == {1}
        assert farm.most_in_flight <= 2
        # Each fire's digest built by one worker once (the feeds arrive over several fires,
        # so there are several digests), each delivered once.
        fires = re.findall(r"digest brief for the fire at (\S+):", logs(tmp_path))
        assert len(fires) >= 3 and len(fires) == len(set(fires)), fires
        digests = one(postgres_url, "SELECT count(*) FROM digests")
        assert digests >= 1 and len(delivered(tmp_path)) == digests
        assert one(postgres_url, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == digests
        # Every item was grouped into a story, by one grouping at a time.
        assert one(postgres_url, "SELECT count(*) FROM items WHERE story_id IS NULL") == 0
        info = json.loads(status.stdout)
        roles_seen = sorted(worker["role"] for worker in info["workers"])
        assert roles_seen == ["scheduler", "scheduler", "worker", "worker", "worker"]
        assert {queue["kind"] for queue in info["queues"]} == {
            "deliver",
            "digest",
            "fetch",
            "group",
        }
        fetches = next(queue for queue in info["queues"] if queue["kind"] == "fetch")
        assert (fetches["total"], fetches["due"]) == (FEEDS, 0)


def test_a_worker_and_a_scheduler_read_the_config_again_on_sighup_and_keep_a_bad_one_out(
    tmp_path: Path, postgres_url: str
) -> None:
    with FeedFarm(feeds=FEEDS) as farm:
        config = write_config(tmp_path, farm, postgres_url)
        everything = config.read_text()
        # Started with feed0 only; the reload adds the others.
        config.write_text(
            "\n".join(
                line for line in everything.splitlines() if "feed" not in line or "feed0," in line
            )
        )

        def stored() -> int:
            return one(
                postgres_url, "SELECT count(*) FROM sources WHERE last_success_at IS NOT NULL"
            )

        with roles(config, ["scheduler"], ["worker"]) as started:
            until(lambda: "claiming jobs" in logs(tmp_path), "the store migrated", tmp_path)
            until(lambda: stored() == 1, "feed0 fetched", tmp_path)
            config.write_text(everything + "  - {name: broken}\n")  # a profile without focus
            for process in started:
                process.send_signal(signal.SIGHUP)
            until(
                lambda: logs(tmp_path).count("config reload rejected") == 2,
                "both refusing the broken config",
                tmp_path,
            )
            assert all(process.poll() is None for process in started)
            config.write_text(everything)
            for process in started:
                process.send_signal(signal.SIGHUP)
            # The scheduler enqueues the new feeds and the worker fetches them: a worker on
            # the old config would drop their jobs as no longer configured.
            until(lambda: stored() == FEEDS, "the added feeds fetched", tmp_path)
            for process in started:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=30) for process in started]
        text = logs(tmp_path)
        assert codes == [0, 0], text[-4000:]
        rejected = [line for line in text.splitlines() if "config reload rejected" in line]
        assert len(rejected) == 2 and all("digests[1].focus: required" in line for line in rejected)
        assert text.count(f"config reloaded from {config}: {FEEDS} sources") == 2, text[-4000:]
        assert set(farm.requests.values()) == {1}


def test_two_groupers_at_once_agree_on_story_ids_and_group_each_item_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two processes grouping one Postgres store at the same moment, in two rounds of
    arriving headlines (the second joining the first's stories): the stories are exactly
    those of one grouping process on SQLite, and each item was grouped by one of them."""
    if not UCI_PATH.is_file():
        pytest.skip(f"no UCI data at {UCI_PATH}")
    headlines = [labelled.item for labelled in load_uci()[:800]]
    rounds = [headlines[:400], headlines[400:]]
    stores = {"postgres": f"url: '{postgres_url}'", "sqlite": f"path: {tmp_path / 'one.db'}"}
    configs = {}
    for name, storage in stores.items():
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(
            f"storage: {{{storage}}}\nsources: [{{name: wire, url: 'https://wire.example/f'}}]\n"
        )
    assignments = {}
    for name, config in configs.items():
        for batch in rounds:
            now = utcnow()
            with Store.open_config(load_config(config).storage) as store:
                store.sync_sources([("wire", "feed", "https://wire.example/f")])
                store.add_items("wire", [stored_headline(entry, now) for entry in batch], now)
            groupers = 2 if name == "postgres" else 1
            counts = group_at_once(config, groupers, STATE_DIRECTORY=str(tmp_path / "state")).counts
            assert sum(counts) == len(batch), counts  # one grouping at a time: none twice
        with Store.open_config(load_config(config).storage) as store:
            items = store.items_by_id([entry.item_id for entry in headlines])
            assignments[name] = {item.id: item.story_id for item in items}
    assert len(assignments["postgres"]) == len(headlines)
    assert assignments["postgres"] == assignments["sqlite"]


def test_a_sigkilled_workers_fetches_return_to_the_pool_after_its_lease(
    tmp_path: Path, postgres_url: str
) -> None:
    with FeedFarm(feeds=FEEDS, delay=60) as farm:  # the first worker's fetches hang
        config = write_config(tmp_path, farm, postgres_url)
        with roles(config, ["scheduler"], ["worker", "--lease", "3", "--batch", "4"]) as started:
            doomed = started[1]
            until(lambda: farm.in_flight == 2, "the doomed worker's fetches", tmp_path)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)
            claimed = one(postgres_url, "SELECT count(*) FROM jobs WHERE claimed_by IS NOT NULL")
            assert claimed == 2  # the two with a host slot; the others went back at once
            farm.delay = 0
            with roles(config, ["worker", "--lease", "3"]):
                until(
                    lambda: (
                        one(
                            postgres_url,
                            "SELECT count(*) FROM sources WHERE last_success_at IS NOT NULL",
                        )
                        == FEEDS
                    ),
                    "every feed stored, the killed worker's included",
                    tmp_path,
                )
        # Only the killed worker's two in-flight fetches were made twice.
        assert sorted(farm.requests.values()).count(2) == 2


def test_deliveries_go_out_once_while_workers_are_sigkilled_and_restarted(
    tmp_path: Path, postgres_url: str
) -> None:
    with FeedFarm(feeds=6) as farm, WebhookReceiver() as hook:
        config = write_config(tmp_path, farm, postgres_url, interval="1s")
        profiles = "".join(
            f"""  - name: p{n}
    focus: Technology news for engineers.
    schedule: "*/2 * * * * *"
    deliver:
      - {{kind: webhook, url: '{hook.url}/p{n}'}}
"""
            for n in range(2)
        )
        config.write_text(config.read_text().split("digests:")[0] + "digests:\n" + profiles)
        lease = ["--lease", "3"]
        with roles(config, ["scheduler"], ["worker", *lease], ["worker", *lease]) as started:
            workers = started[1:]
            for kill in range(4):  # a worker killed every few seconds, and started again

                def more(than: int = kill) -> bool:
                    return len(hook.accepted) > than

                until(more, "a delivery before the kill", tmp_path)
                farm.publish()
                victim = workers[kill % 2]
                victim.kill()
                victim.wait(timeout=10)
                workers[kill % 2] = spawn(config, ["worker", *lease])
                started.append(workers[kill % 2])
            # Without kills now: the outbox drains.
            until(
                lambda: (
                    one(postgres_url, "SELECT count(*) FROM deliveries WHERE status <> 'sent'") == 0
                ),
                "every delivery sent",
                tmp_path,
            )
        receipts = Counter((r.path, r.headers.get("x-trendfinder-digest")) for r in hook.accepted)
        sent = one(postgres_url, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
        # Each digest's delivery reached the receiver (a re-sent copy is the same key).
        assert sent >= 2 and len(receipts) == sent, (sent, receipts)
        # A copy twice only for a send in flight when its worker was killed (logged).
        doubles = sum(count - 1 for count in receipts.values())
        assert doubles <= logs(tmp_path).count("was interrupted"), receipts
