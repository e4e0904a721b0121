"""Collection speed and memory: our collector against the naive feedparser loop, one run.

    python tests/bench/bench_collect.py [--feeds 1000] [--items 30] [--latency 0.05]
                                        [--naive-sample 100]

A loopback FeedServer (in its own process, so it does not compete with the client for the
GIL) serves N gzip-capable RSS feeds with ETag/Last-Modified and a per-request latency.
Each measurement runs in a fresh child process, so its peak RSS (ru_maxrss) is its own:

1. our collector's first cycle (fetch, parse, store in SQLite) over every feed;
2. a second cycle where every feed answers 304 Not Modified;
3. a third where the server ignores conditional GET but the content is unchanged;
4. the naive baseline: a sequential `feedparser.parse(url)` loop. Over a sample of feeds
   (`--naive-sample`, default 100) and extrapolated to all N, since 1,000 sequential
   requests take minutes; `--naive-sample 0` runs it over every feed.

The feeds are spread over `--origins` loopback servers (ports), as real feeds come from
many servers. They all share the host name 127.0.0.1, so the collector's per-host cap is
raised to its global cap here, as if each origin were its own host.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GOAL_SPEEDUP = 10.0
GOAL_304_SECONDS = 2.0
GOAL_MEMORY_MB = 300.0


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_mb: float  # the measured process and its parsing processes, together
    detail: str


def synthetic_feed(feed: int, items: int) -> bytes:
    entries = []
    for n in range(items):
        published = format_datetime(NOW - timedelta(minutes=17 * n + feed), usegmt=True)
        entries.append(
            f"<item><title>Feed {feed} story {n}: a headline of ordinary length here</title>"
            f"<link>https://outlet{feed % 97}.example/news/{feed}/{n}?utm_source=rss</link>"
            f"<guid isPermaLink='false'>feed-{feed}-item-{n}</guid>"
            f"<pubDate>{published}</pubDate>"
            f"<description>&lt;p&gt;Paragraph one of story {n} from feed {feed}, with a "
            f"few sentences of summary text as feeds usually carry. It goes on a little "
            f"to look like a real teaser.&lt;/p&gt;&lt;p&gt;And a second paragraph "
            f"with a &lt;a href='https://example.com/{n}'&gt;link&lt;/a&gt;.&lt;/p&gt;"
            f"</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://outlet{feed % 97}.example/</link>"
        f"<description>Synthetic feed {feed}</description>{''.join(entries)}</channel></rss>"
    ).encode()


# --- the server process ------------------------------------------------------------------


def serve(
    conn: multiprocessing.connection.Connection,
    feeds: int,
    items: int,
    latency: float,
    origins: int,
) -> None:
    from loopback import FeedServer

    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FeedServer(latency=latency)) for _ in range(origins)]
        urls = [
            servers[n % origins].add(f"/feed/{n}", synthetic_feed(n, items), gzip=True)
            for n in range(feeds)
        ]
        conn.send(urls)
        while True:
            command, value = conn.recv()
            if command == "stop":
                return
            if command == "ignore_conditional":
                for server in servers:
                    server.ignore_conditional = value
                conn.send("ok")


# --- measured children --------------------------------------------------------------------


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the parsing processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildMemory:
    """Peak RSS (VmHWM) of each child process, sampled from /proc while they run.

    RUSAGE_CHILDREN would count a spawned child's pre-exec moment, when it is a copy of this
    process, so the parsing processes are read from /proc instead, and only once they run
    their own program (their command line is no longer ours).
    """

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        ours = Path("/proc/self/cmdline").read_bytes()
        while not self._stop.wait(0.05):
            for task in Path("/proc/self/task").iterdir():
                for pid in (task / "children").read_text().split():
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        if Path(f"/proc/{pid}/cmdline").read_bytes() == ours:
                            continue
                        status = Path(f"/proc/{pid}/status").read_text()
                        kb = int(status.split("VmHWM:")[1].split()[0])
                        self.peaks[int(pid)] = max(self.peaks.get(int(pid), 0), kb / 1024)


def our_cycle(urls: list[str], db: str, concurrency: int) -> Measurement:
    from core.config import parse_config
    from core.store import Store
    from daemon.runner import Runner

    sources = "\n".join(f"  - {{name: feed-{n}, url: '{url}'}}" for n, url in enumerate(urls))
    config = parse_config(
        f"storage: {{path: '{db}'}}\n"
        f"collect: {{concurrency: {concurrency}, per_host: {concurrency}}}\n"
        f"sources:\n{sources}\n"
    )
    with Store.open(Path(db)) as store, ChildMemory() as children:
        runner = Runner(config, store)
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        report = runner.collect(due_only=False)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
    own = _peak_mb()
    detail = (
        f"{report.sources_ok} parsed, {report.sources_unchanged} unchanged, "
        f"{report.sources_failed} failed, {report.new_items} new items; {cpu:.1f} CPU-s"
    )
    if children.peaks:
        workers = " + ".join(f"{peak:.0f}" for peak in children.peaks.values())
        detail += f"; memory: {own:.0f} MB + parsing processes {workers} MB"
    return Measurement(seconds, own + sum(children.peaks.values()), detail)


def naive_loop(urls: list[str]) -> Measurement:
    import feedparser

    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    entries = sum(len(feedparser.parse(url).entries) for url in urls)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    detail = f"{len(urls)} feeds, {entries} entries; {cpu:.1f} CPU-s"
    return Measurement(seconds, _peak_mb(), detail)


def _child(conn: multiprocessing.connection.Connection, name: str, args: tuple[object, ...]):
    conn.send({"our_cycle": our_cycle, "naive_loop": naive_loop}[name](*args))  # type: ignore[operator]


def measure(context: multiprocessing.context.SpawnContext, name: str, *args: object) -> Measurement:
    parent, child = context.Pipe()
    process = context.Process(target=_child, args=(child, name, args))
    process.start()
    result: Measurement = parent.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=64, help="collect.concurrency")
    parser.add_argument("--origins", type=int, default=50, help="loopback servers (ports)")
    parser.add_argument("--naive-sample", type=int, default=100, help="0: every feed")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    control, server_end = context.Pipe()
    server = context.Process(
        target=serve,
        args=(server_end, args.feeds, args.items, args.latency, args.origins),
        daemon=True,
    )
    server.start()
    urls: list[str] = control.recv()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{args.feeds} feeds x {args.items} items on {args.origins} loopback origins, "
        f"{args.latency * 1000:.0f} ms latency per request, concurrency {args.concurrency}"
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            db = str(Path(folder) / "bench.db")
            first = measure(context, "our_cycle", urls, db, args.concurrency)
            second = measure(context, "our_cycle", urls, db, args.concurrency)
            control.send(("ignore_conditional", True))
            control.recv()
            third = measure(context, "our_cycle", urls, db, args.concurrency)
            control.send(("ignore_conditional", False))
            control.recv()
        sample = args.naive_sample if 0 < args.naive_sample < len(urls) else len(urls)
        naive_sampled = measure(context, "naive_loop", urls[:sample])
    finally:
        control.send(("stop", None))
        server.join(timeout=10)

    naive_seconds = naive_sampled.seconds * len(urls) / sample
    extrapolated = f" (timed on {sample}, extrapolated)" if sample < len(urls) else ""
    rows = [
        ("collector, first cycle", first),
        ("collector, all 304", second),
        ("collector, unchanged bodies", third),
        (f"naive feedparser loop{extrapolated}", naive_sampled),
    ]
    print(f"\n{'measurement':<52} {'seconds':>9} {'peak MB':>8}  detail")
    for label, result in rows:
        seconds = naive_seconds if result is naive_sampled else result.seconds
        print(f"{label:<52} {seconds:>9.2f} {result.peak_mb:>8.0f}  {result.detail}")
    speedup = naive_seconds / first.seconds
    peak = max(result.peak_mb for _, result in rows[:3])
    print(
        f"\nfirst cycle vs naive: {speedup:.1f}x faster (goal >= {GOAL_SPEEDUP:.0f}x) "
        f"{'ok' if speedup >= GOAL_SPEEDUP else 'MISSED'}"
    )
    print(
        f"all-304 cycle: {second.seconds:.2f} s (goal < {GOAL_304_SECONDS:.0f} s) "
        f"{'ok' if second.seconds < GOAL_304_SECONDS else 'MISSED'}; "
        f"{naive_seconds / second.seconds:.0f}x faster than naive"
    )
    print(
        f"unchanged-body cycle: {third.seconds:.2f} s, "
        f"{naive_seconds / third.seconds:.0f}x faster than naive"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        f"collector peak memory: {peak:.0f} MB (goal < {GOAL_MEMORY_MB:.0f} MB) "
        f"{'ok' if peak < GOAL_MEMORY_MB else 'MISSED'}; naive {naive_sampled.peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
