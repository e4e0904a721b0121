"""SQLite against Postgres on the same work: the single-machine daemon, store work, job
claims with 1, 2 and 4 workers, and story grouping by 1 and 2 processes at once.

    python tests/bench/bench_backends.py [--parts daemon store grouping] [--feeds 200]
        [--runs 3] [--sources 200] [--items 50] [--jobs 2000] [--group-items 10000]

Starts a throwaway Postgres cluster (tests/loopback/postgres.py: Debian's postgresql
package, fsync on, default settings otherwise) beside a SQLite file, then times on each:

- daemon: `trendfinder run --once --all` as a whole process (collect every loopback feed of
  tests/feedfarm.py, group, build the digest with the offline analyzer, deliver it to a
  file), `--runs` times on the same store, each feed one item newer before every run after
  the first (the first run also creates the store), the backends taking turns;
- store: a collect cycle's writes (every source's items and fetch state, one transaction
  per source), the pending-items query a digest makes, and draining a queue of fetch jobs
  with 1, 2 and 4 worker processes (claim, then finish with the next due time), counting
  double claims;
- grouping (Postgres): `--group-items` synthetic headlines (tests/bench/synthetic.py, from
  the UCI stories) grouped by the daemon's grouping step in 1, then 2 processes started at
  the same moment on a fresh database each, which the store's group lock serialises.

Whole processes; the load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.synthetic import synthetic_day  # noqa: E402
from bench.uci import load_uci, stored_headline  # noqa: E402
from feedfarm import FeedFarm  # noqa: E402
from loopback.postgres import PostgresServer, postgres_bin  # noqa: E402
from processes import cli_env, group_at_once  # noqa: E402

from core.clock import to_text  # noqa: E402
from core.items import FetchOutcome, NewItem  # noqa: E402
from core.store import Store  # noqa: E402

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

WORKER = """
import sys
from datetime import datetime, timedelta
from pathlib import Path
sys.path[:0] = [{root!r}]
from core.store import Store
url, path = {url!r}, {path!r}
store = Store.open_url(url, Path(".")) if url else Store.open(Path(path))
now = datetime.fromisoformat({now!r})
sys.stdin.readline()
claimed = []
while (job := store.claim_job(sys.argv[1], ("fetch",), now, timedelta(minutes=1))) is not None:
    claimed.append(job.key)
    store.finish_job(job, now + timedelta(minutes=30))
print(" ".join(claimed))
"""


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def collect_cycle(store: Store, sources: int, items: int) -> float:
    names = [f"feed-{n}" for n in range(sources)]
    store.sync_sources((name, "feed", f"https://example.com/{name}") for name in names)
    start = time.perf_counter()
    for s, name in enumerate(names):
        batch = [
            NewItem(
                id=f"it_{s}_{n}",
                url=f"https://example.com/{s}/{n}",
                title=f"Headline {s} {n}",
                text="body " * 40,
                published=NOW,
                content_hash=f"h{s}{n}",
            )
            for n in range(items)
        ]
        with store.transaction():
            store.add_items(name, batch, NOW)
            store.record_fetch(FetchOutcome(source=name, status="ok"), NOW, NOW)
    return time.perf_counter() - start


def drain(store: Store, url: str | None, path: str, jobs: int, workers: int) -> tuple[float, int]:
    with store.transaction():
        store.sql.execute("DELETE FROM jobs")
        for n in range(jobs):
            store.enqueue_job("fetch", f"feed-{n}", NOW)
    script = WORKER.format(root=str(ROOT), url=url, path=path, now=to_text(NOW))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"w{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    time.sleep(3)  # every worker started and connected (not timed)
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    claims: list[str] = []
    for proc in procs:
        assert proc.stdout is not None
        claims += proc.stdout.read().split()
        proc.wait(timeout=600)
    elapsed = time.perf_counter() - start
    assert len(set(claims)) == jobs, "every job claimed"
    return elapsed, len(claims) - len(set(claims))


def daemon_runs(folder: Path, storages: dict[str, str], feeds: int, runs: int) -> None:
    """`run --once --all` `runs` times on each store, the backends taking turns (so the
    machine's load falls on both alike), each feed one item newer before every run after
    the first."""
    with contextlib.ExitStack() as stack:
        configs = {}
        for name, storage in storages.items():
            farm = stack.enter_context(FeedFarm(feeds=feeds))
            work = folder / name
            work.mkdir()
            sources = "\n".join(f"  - {{name: f{n}, url: '{farm.url(n)}'}}" for n in range(feeds))
            configs[name] = (farm, work / "config.yaml")
            configs[name][1].write_text(
                f"storage: {{{storage}}}\nllm: {{api_key: ''}}\n"
                f"collect: {{allow_private_networks: true}}\nsources:\n{sources}\n"
                "digests:\n  - name: brief\n    focus: Technology news for engineers.\n"
                f"    deliver: [{{kind: file, directory: {work / 'out'}}}]\n"
            )
        for run in range(runs):
            for name, (farm, config) in configs.items():
                if run:
                    farm.publish()
                command = ["-m", "daemon", "--config", str(config), "run", "--once", "--all"]
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, *command],
                    cwd=config.parent,
                    env=cli_env(STATE_DIRECTORY=str(config.parent / "state")),
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                took = time.perf_counter() - start
                if done.returncode != 0:
                    sys.exit(f"{name}: run --once failed:\n{done.stderr[-3000:]}")
                print(
                    f"{name}: run --once --all #{run + 1}, {feeds} feeds "
                    f"({'a new store' if run == 0 else 'one new item per feed'}): {took:.2f} s "
                    f"({load()})"
                )


def grouping(server: PostgresServer, folder: Path, count: int) -> None:
    """The same `count` new headlines grouped by 1, then 2 processes at once."""
    day = synthetic_day(load_uci(), count)
    for processes in (1, 2):
        url = server.database()
        config = folder / f"group{processes}.yaml"
        config.write_text(
            f"storage: {{url: '{url}'}}\nsources: [{{name: wire, url: 'https://w.example/f'}}]\n"
        )
        with Store.open_url(url, folder) as store:
            store.sync_sources([("wire", "feed", "https://w.example/f")])
            items = [stored_headline(labelled.item, NOW) for labelled in day]
            store.add_items("wire", items, datetime.now(UTC))
        grouped = group_at_once(config, processes, STATE_DIRECTORY=str(folder / "state"))
        print(
            f"postgres: grouping {count:,} new items, {processes} process(es) at once: "
            f"{grouped.seconds:.2f} s ({count / grouped.seconds:,.0f} items/s), items grouped "
            f"by each {grouped.counts} ({load()})"
        )
        server.drop(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parts = ("daemon", "store", "grouping")
    parser.add_argument("--parts", nargs="+", choices=parts, default=list(parts))
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--group-items", type=int, default=10_000)
    args = parser.parse_args()
    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("needs Debian's postgresql package (apt-get install postgresql)")
    with PostgresServer(bin_dir, fsync=True) as server, tempfile.TemporaryDirectory() as folder:
        os.environ.update(server.environment)
        if "daemon" in args.parts:
            storages = {
                "sqlite": f"path: {Path(folder) / 'daemon.db'}",
                "postgres": f"url: '{server.database()}'",
            }
            daemon_runs(Path(folder), storages, args.feeds, args.runs)
        if "grouping" in args.parts:
            grouping(server, Path(folder), args.group_items)
        if "store" in args.parts:
            store_work(server, folder, args)


def store_work(server: PostgresServer, folder: str, args: argparse.Namespace) -> None:
    url = server.database()
    path = str(Path(folder) / "bench.db")
    for name, store, store_url in (
        ("sqlite", Store.open(Path(path)), None),
        ("postgres", Store.open_url(url, Path(folder)), url),
    ):
        with store:
            took = collect_cycle(store, args.sources, args.items)
            rows = args.sources * args.items
            print(
                f"{name}: collect writes, {rows:,} items from {args.sources} sources: "
                f"{took:.2f} s ({rows / took:,.0f} items/s; {load()})"
            )
            sources = [f"feed-{n}" for n in range(20)]
            start = time.perf_counter()
            pending = store.pending_items("daily", sources, NOW - timedelta(days=1))
            took = time.perf_counter() - start
            print(
                f"{name}: pending items of 20 sources: {took * 1000:.0f} ms "
                f"({len(pending):,} rows; {load()})"
            )
            for workers in (1, 2, 4):
                took, doubles = drain(store, store_url, path, args.jobs, workers)
                print(
                    f"{name}: {args.jobs:,} fetch jobs, {workers} worker(s): {took:.2f} s "
                    f"({args.jobs / took:,.0f} claims/s), {doubles} double claims "
                    f"({load()})"
                )


if __name__ == "__main__":
    main()
