"""10,000 loopback feeds fetched by 1, 2 and 4 `trendfinder worker` processes against one
Postgres; then deliveries with a worker SIGKILLed every few seconds.

    python tests/bench/bench_workers.py [--feeds 10000] [--workers 1 2 4] [--seconds 900]
        [--kill-seconds 60] [--kill-every 6]

Starts a throwaway Postgres cluster (tests/loopback/postgres.py, fsync on) and a FeedFarm
(tests/feedfarm.py: light RSS feeds of 2 items, one loopback host). For each worker count,
a fresh database, one `trendfinder scheduler` and N `trendfinder worker` processes: the
time until every feed was fetched once (fetches/s), double fetches (the farm counts every
request; must be 0), and the queue lag (the oldest due fetch job's age, sampled every
half second). Then the kill phase: 100 feeds updated every second, three digest profiles
every 2 s to webhook targets, 3 workers, one SIGKILLed (and restarted) every 6 s: double
deliveries (a webhook receipt of the same digest twice), beyond the ones the log says were
in flight at a kill. Whole processes throughout; the load average is printed beside each
figure.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from feedfarm import FeedFarm  # noqa: E402
from loopback.postgres import PostgresServer, postgres_bin  # noqa: E402
from loopback.webhook import WebhookReceiver  # noqa: E402

from core.clock import utcnow  # noqa: E402
from core.store import Store  # noqa: E402


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def write_config(
    folder: Path, farm: FeedFarm, feeds: int, url: str, interval: str, profiles: str = ""
) -> Path:
    sources = "\n".join(
        f"  - {{name: feed{n}, url: '{farm.url(n)}', interval: {interval}}}" for n in range(feeds)
    )
    path = folder / "config.yaml"
    path.write_text(
        f"storage: {{url: '{url}'}}\nllm: {{api_key: ''}}\n"
        # One loopback host stands for many: per_host is the concurrency here.
        "collect: {concurrency: 64, per_host: 64, allow_private_networks: true}\n"
        f"sources:\n{sources}\n{profiles}"
    )
    return path


def start(config: Path, role: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STATE_DIRECTORY": str(config.parent)}
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(config), role, *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def one(url: str, sql: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def fetch_phase(
    server: PostgresServer, farm: FeedFarm, feeds: int, workers: int, seconds: float
) -> None:
    url = server.database()
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    config = write_config(folder, farm, feeds, url, "1h")
    Store.open_url(url, folder).close()  # the schema, before anyone polls it
    farm.requests.clear()
    log = folder / "roles.log"
    processes = [start(config, "scheduler", log)]
    processes += [start(config, "worker", log) for _ in range(workers)]
    began = time.monotonic()
    lag = 0.0
    deadline = began + seconds
    fetched = 0.0
    try:
        while time.monotonic() < deadline:
            fetched = one(url, "SELECT count(*) FROM sources WHERE last_attempt_at IS NOT NULL")
            with Store.open_url(url, folder) as store:
                queues = {queue.kind: queue for queue in store.job_queues(utcnow())}
            oldest = queues["fetch"].oldest_due_at if "fetch" in queues else None
            if oldest is not None:
                lag = max(lag, (utcnow() - oldest).total_seconds())
            if fetched >= feeds:
                break
            time.sleep(0.5)
        took = time.monotonic() - began
        figure_load = load()
    finally:
        stop(processes)
    doubles = sum(count - 1 for count in farm.requests.values() if count > 1)
    print(
        f"{workers} worker(s): {int(fetched)} of {feeds} feeds in {took:.1f} s = "
        f"{fetched / took:.0f} fetches/s; double fetches {doubles}; "
        f"max queue lag {lag:.1f} s ({figure_load})",
        flush=True,
    )
    server.drop(url)


PROFILE = """  - name: p{n}
    focus: Technology news for engineers.
    schedule: "*/2 * * * * *"
    deliver:
      - {{kind: webhook, url: '{hook}/p{n}'}}
"""


def kill_phase(server: PostgresServer, seconds: float, every: float) -> None:
    url = server.database()
    folder = Path(tempfile.mkdtemp(prefix="bench-kills-"))
    rng = random.Random(16)
    with FeedFarm(feeds=100, items_per_feed=2) as farm, WebhookReceiver() as hook:
        profiles = "digests:\n" + "".join(PROFILE.format(n=n, hook=hook.url) for n in range(3))
        config = write_config(folder, farm, 100, url, "1s", profiles)
        Store.open_url(url, folder).close()
        log = folder / "roles.log"
        scheduler = start(config, "scheduler", log)
        workers = [start(config, "worker", log, "--lease", "3") for _ in range(3)]
        kills = 0
        began = time.monotonic()
        next_kill = began + every
        try:
            while time.monotonic() - began < seconds:
                time.sleep(1.0)
                farm.publish()
                if time.monotonic() >= next_kill:
                    next_kill += every
                    victim = rng.randrange(len(workers))
                    workers[victim].kill()
                    workers[victim].wait(timeout=10)
                    kills += 1
                    workers[victim] = start(config, "worker", log, "--lease", "3")
            # Let the outbox drain without kills.
            drained = time.monotonic() + 60
            while time.monotonic() < drained and one(
                url, "SELECT count(*) FROM deliveries WHERE status <> 'sent'"
            ):
                time.sleep(0.5)
            figure_load = load()
        finally:
            stop([scheduler, *workers])
        receipts = Counter((r.path, r.headers.get("x-trendfinder-digest")) for r in hook.accepted)
        doubles = sum(count - 1 for count in receipts.values() if count > 1)
        in_flight = len(re.findall(r"was interrupted", log.read_text()))
        sent = one(url, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
        queued = one(url, "SELECT count(*) FROM deliveries")
    print(
        f"kills: {kills} SIGKILLs in {seconds:.0f} s (one every {every:g} s) with 3 workers; "
        f"{int(queued)} deliveries, "
        f"{int(sent)} sent, {len(receipts)} received; double deliveries {doubles} "
        f"({in_flight} re-sent after being in flight at a kill) ({figure_load})",
        flush=True,
    )
    server.drop(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    # Each worker count runs until every feed was fetched or this long (the rate is the same).
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--kill-seconds", type=float, default=60)
    parser.add_argument("--kill-every", type=float, default=6)
    args = parser.parse_args()
    # A bench stopped with SIGTERM still stops its Postgres cluster and feed farm.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    with PostgresServer(bin_dir, fsync=True) as server:
        os.environ.update(server.environment)
        with FeedFarm(feeds=args.feeds, items_per_feed=2, generation=2) as farm:
            for workers in args.workers:
                fetch_phase(server, farm, args.feeds, workers, args.seconds)
        if args.kill_seconds:
            kill_phase(server, args.kill_seconds, args.kill_every)


if __name__ == "__main__":
    main()
