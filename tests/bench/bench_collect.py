"""Collection speed as users meet it: whole processes, side by side, in one run.

    python tests/bench/bench_collect.py [--origins 1,16] [--feeds 300]
    python tests/bench/bench_collect.py --synthetic --feeds 1000 --items 30 --origins 50
    python tests/bench/bench_collect.py --synthetic --feeds 10000 --items 30 --no-baselines

A loopback FeedServer process serves the feeds (gzip, ETag/Last-Modified, `--latency` per
request) over `--origins` ports. By default the feeds are made from the shared real-world
captures (../shared/data/feeds/real-world/*.xml, ~138 KB a feed as real ones are): feed n
is capture n % 24 with its links moved to a host of its own and its titles numbered, so no
two feeds carry the same items. `--synthetic` serves light generated feeds instead.

Each row is one process, started fresh and timed from its start to its exit:

- `trendfinder collect` on a cold store (interpreter start, imports, store, fetch, parse,
  store writes, grouping), then again on the same store, when every feed answers 304;
- `thirty_lines.py`: httpx.AsyncClient + Semaphore(64) + feedparser.parse(bytes), no store;
- the naive loop: `for url in urls: feedparser.parse(url)`.

CPU seconds are the process's and its children's (wait4); peak memory is the largest sum
of RSS over the process and its children (the parsing processes), sampled every 20 ms.
The 1-minute load average is printed beside each row: the machine may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

CAPTURES = REPO.parent / "shared" / "data" / "feeds" / "real-world"
BIN = Path(sys.executable).parent
GOAL_NAIVE = 10.0
GOAL_SCRIPT = 3.0
GOAL_304_SECONDS = 0.5
GOAL_MEMORY_MB = 300.0

# A link in text or in an href/url attribute; not a namespace name (xmlns="http://...").
_URL_HOST = re.compile(
    rb"""((?:>|<!\[CDATA\[|\shref=["']|\surl=["'])\s*https?://)(?=[A-Za-z0-9])"""
)
_TITLE = re.compile(rb"(<title(?:\s[^>]*)?>)")


def real_world_feed(n: int, captures: list[bytes]) -> bytes:
    """Capture n % len(captures), made distinct: its own link host, numbered titles."""
    body = captures[n % len(captures)]
    body = _URL_HOST.sub(rb"\g<1>f%d." % n, body)
    return _TITLE.sub(rb"\g<1>%d: " % n, body)


def synthetic_feed(feed: int, items: int) -> bytes:
    entries = []
    for n in range(items):
        entries.append(
            f"<item><title>Feed {feed} story {n}: a headline of ordinary length here</title>"
            f"<link>https://outlet{feed % 97}.example/news/{feed}/{n}?utm_source=rss</link>"
            f"<guid isPermaLink='false'>feed-{feed}-item-{n}</guid>"
            f"<pubDate>Fri, 27 Nov 2026 {n % 24:02d}:{feed % 60:02d}:00 GMT</pubDate>"
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


def make_feeds(count: int, synthetic: bool, items: int) -> list[bytes]:
    if synthetic:
        return [synthetic_feed(n, items) for n in range(count)]
    captures = [path.read_bytes() for path in sorted(CAPTURES.glob("*.xml"))]
    return [real_world_feed(n, captures) for n in range(count)]


# --- the server process ------------------------------------------------------------------


def serve(
    conn: multiprocessing.connection.Connection,
    feeds: int,
    synthetic: bool,
    items: int,
    latency: float,
    origins: int,
) -> None:
    from loopback import FeedServer
    from loopback.feeds import sniff_content_type

    bodies = make_feeds(feeds, synthetic, items)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FeedServer(latency=latency)) for _ in range(origins)]
        urls = [
            servers[n % origins].add(
                f"/feed/{n}", body, content_type=sniff_content_type(body), gzip=True
            )
            for n, body in enumerate(bodies)
        ]
        conn.send((urls, sum(len(body) for body in bodies)))
        conn.recv()  # stop


# --- measured processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    seconds: float
    cpu: float
    peak_mb: float
    load: float
    output: str


def _tree_rss_mb(pid: int) -> float:
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = Path(f"/proc/{current}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
    return total / 1024


def run_process(label: str, command: list[str], timeout: float) -> Row:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, text=True
    )
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _tree_rss_mb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    assert process.stdout
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    timer.cancel()
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    peak = max(peak, usage.ru_maxrss / 1024)
    last = output.strip().splitlines()[-1] if output.strip() else ""
    if process.returncode not in (0, 1):
        last = f"exit {process.returncode}: {output.strip()[-400:]}"
    return Row(label, seconds, usage.ru_utime + usage.ru_stime, peak, load, last)


def write_config(folder: Path, urls: list[str]) -> Path:
    sources = "\n".join(f"  - {{name: feed-{n}, url: '{url}'}}" for n, url in enumerate(urls))
    path = folder / "config.yaml"
    path.write_text(
        f"storage: {{path: '{folder / 'store.db'}'}}\n"
        # The origins share the host name 127.0.0.1, so the per-host cap is lifted to the
        # global one: each origin stands for a host of its own.
        "collect: {concurrency: 64, per_host: 64}\n"
        f"sources:\n{sources}\n"
    )
    return path


NAIVE = (
    "import sys, feedparser\n"
    "urls = open(sys.argv[1]).read().split()\n"
    "print(len(urls), 'feeds,', sum(len(feedparser.parse(u).entries) for u in urls), 'entries')"
)


def measure_origins(args: argparse.Namespace, origins: int) -> None:
    context = multiprocessing.get_context("spawn")
    control, server_end = context.Pipe()
    server = context.Process(
        target=serve,
        args=(server_end, args.feeds, args.synthetic, args.items, args.latency, origins),
        daemon=True,
    )
    server.start()
    urls, size = control.recv()
    megabytes = size / 1e6
    kind = f"synthetic x {args.items} items" if args.synthetic else "real-world captures"
    print(
        f"\n== {len(urls)} feeds ({kind}, {megabytes:.1f} MB) on {origins} loopback "
        f"origin(s), {args.latency * 1000:.0f} ms latency per request"
    )
    trendfinder = [str(BIN / "trendfinder")]
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            config = write_config(folder, urls)
            url_file = folder / "urls.txt"
            url_file.write_text("\n".join(urls))
            collect = [*trendfinder, "--config", str(config), "collect"]
            rows.append(run_process("trendfinder collect, cold store", collect, args.timeout))
            rows.append(run_process("trendfinder collect, all 304", collect, args.timeout))
            if args.baselines:
                script = [sys.executable, str(REPO / "tests/bench/thirty_lines.py"), str(url_file)]
                rows.append(run_process("30-line script (httpx+feedparser)", script, args.timeout))
                sample = args.naive_sample if 0 < args.naive_sample < len(urls) else len(urls)
                url_file.write_text("\n".join(urls[:sample]))
                naive = [sys.executable, "-c", NAIVE, str(url_file)]
                row = run_process("naive feedparser loop", naive, args.timeout)
                if sample < len(urls):
                    scale = len(urls) / sample
                    row = Row(
                        f"naive loop (on {sample}, x{scale:g})",
                        row.seconds * scale,
                        row.cpu * scale,
                        row.peak_mb,
                        row.load,
                        row.output,
                    )
                rows.append(row)
    finally:
        control.send("stop")
        server.join(timeout=10)
    print(f"{'':<38}{'wall s':>8}{'CPU s':>8}{'CPU s/MB':>9}{'peak MB':>9}{'load':>6}  output")
    for row in rows:
        print(
            f"{row.label:<38}{row.seconds:>8.2f}{row.cpu:>8.2f}{row.cpu / megabytes:>9.3f}"
            f"{row.peak_mb:>9.0f}{row.load:>6.1f}  {row.output[:110]}"
        )
    cold, warm = rows[0], rows[1]
    verdict = "ok" if max(warm.seconds, warm.cpu) < GOAL_304_SECONDS else "MISSED"
    print(
        f"all-304 cycle: {warm.seconds:.2f} s wall, {warm.cpu:.2f} CPU-s "
        f"(goal < {GOAL_304_SECONDS} s) {verdict}"
    )
    print(
        f"peak memory, cold cycle: {cold.peak_mb:.0f} MB (goal < {GOAL_MEMORY_MB:.0f} MB) "
        f"{'ok' if cold.peak_mb < GOAL_MEMORY_MB else 'MISSED'}"
    )
    for row, goal in zip(rows[2:], (GOAL_SCRIPT, GOAL_NAIVE), strict=False):
        ratio = row.seconds / cold.seconds
        print(
            f"{row.label} / trendfinder: {ratio:.1f}x (goal >= {goal:g}x) "
            f"{'ok' if ratio >= goal else 'MISSED'}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--synthetic", action="store_true", help="generated light feeds")
    parser.add_argument("--items", type=int, default=30, help="items per synthetic feed")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--origins", default="1,16", help="comma-separated origin counts")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--naive-sample", type=int, default=0, help="0: every feed")
    parser.add_argument("--timeout", type=float, default=300, help="per process, seconds")
    args = parser.parse_args()
    for origins in (int(value) for value in args.origins.split(",")):
        measure_origins(args, origins)


if __name__ == "__main__":
    main()
