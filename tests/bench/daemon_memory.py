"""Memory of a long-running daemon: `trendfinder run` polling 1,000 loopback feeds.

Every feed gains one item per cycle, so each cycle stores 1,000 new items, and a digest is
built every 15 s; with --static the feeds never change after the first fetch (each cycle is
1,000 conditional GETs answered 304), which isolates the daemon's own memory from the growth
of the store. A cycle ends when every feed has been fetched once more. Prints the daemon's
resident memory (RSS) after cycle 1 and after the last cycle, side by side, and the whole
service's: the PSS summed over the daemon and its descendants (what systemd's MemoryMax
holds the service to), after each cycle and its peak, sampled every 0.2 s.

    python tests/bench/daemon_memory.py [--feeds 1000] [--cycles 20] [--static]

Goal: no growth beyond noise between cycle 1 and cycle 20, and the service under 300 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from feedfarm import FeedFarm  # noqa: E402
from processes import daemon  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of `pid`, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size of `pid` in MB: its private pages plus its share of the pages
    it shares with other processes, so that a sum over processes counts each page once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise KeyError("Pss")


def family(pid: int) -> set[int]:
    """`pid` and all its descendants (the fork server, its resource tracker, a grouping or
    digest child)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rpartition(")")[2].split()[1]
            )
        except (ValueError, OSError):
            continue
    members, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in members} - members
        members |= more
        grew = bool(more)
    return members


def service_mb(pid: int) -> tuple[float, int]:
    """The whole service's memory: PSS summed over `pid`'s process tree, and its size."""
    total, counted = 0.0, 0
    for member in family(pid):
        try:
            total += pss_mb(member)
            counted += 1
        except (OSError, KeyError):
            continue  # it exited meanwhile
    return total, counted


class Sampler:
    """Samples the service's memory every `every` seconds, so that a child living only for
    one grouping is seen: the peak of the sum, and the processes at that peak."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every = pid, every
        self.peak, self.peak_processes = 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            total, counted = service_mb(self.pid)
            if total > self.peak:
                self.peak, self.peak_processes = total, counted

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--static", action="store_true", help="feeds never change")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="trendfinder-memory-") as scratch,
        FeedFarm(feeds=args.feeds, items_per_feed=10, generation=10) as farm,
    ):
        folder = Path(scratch)
        sources = "\n".join(
            f"  - {{name: feed{n}, url: '{farm.url(n)}', interval: 2s}}" for n in range(args.feeds)
        )
        config = folder / "config.yaml"
        config.write_text(
            f"""
storage: {{path: state/trendfinder.db}}
llm: {{api_key: ''}}
collect: {{concurrency: 64, per_host: 64}}
sources:
{sources}
digests:
  - name: brief
    focus: Technology and world news.
    schedule: "*/15 * * * * *"
    deliver:
      - {{kind: file, directory: out}}
"""
        )
        started = time.monotonic()
        readings: dict[int, tuple[float, float, float, float]] = {}
        with daemon(config) as run:
            pid = run.process.pid
            sampler = Sampler(pid)
            for cycle in range(1, args.cycles + 1):
                deadline = time.monotonic() + 600
                while min(farm.requests[n] for n in range(args.feeds)) < cycle:
                    if run.process.poll() is not None or time.monotonic() > deadline:
                        print(run.log()[-3000:], file=sys.stderr)
                        return 1
                    time.sleep(0.2)
                current, peak = rss_mb(pid)
                service, processes = service_mb(pid)
                readings[cycle] = (current, peak, service, time.monotonic() - started)
                print(
                    f"cycle {cycle:>2} at {readings[cycle][3]:6.1f} s: "
                    f"daemon RSS {current:6.1f} MB "
                    f"(peak {peak:6.1f}); service PSS {service:6.1f} MB in {processes} processes "
                    f"(peak so far {sampler.peak:6.1f}); load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                if not args.static:
                    farm.publish()
            sampler.stop()
            run.signal(15)
            code = run.process.wait(timeout=60)
        digests = len(list((folder / "out" / "brief").glob("*.json")))
        items = (folder / "state" / "trendfinder.db").stat().st_size / 1e6
    first, last = readings[1], readings[args.cycles]
    print()
    workload = "static feeds" if args.static else "one new item per feed per cycle"
    print(f"feeds: {args.feeds} ({workload}), cycles: {args.cycles}, digests: {digests}")
    print(f"store size at the end: {items:.1f} MB; daemon exit code on SIGTERM: {code}")
    print(f"daemon RSS after cycle 1:  {first[0]:6.1f} MB")
    print(f"daemon RSS after cycle {args.cycles}: {last[0]:6.1f} MB  (peak {last[1]:.1f} MB)")
    print(f"growth: {last[0] - first[0]:+.1f} MB ({(last[0] / first[0] - 1) * 100:+.1f} %)")
    print(
        f"service PSS (daemon and its descendants) after cycle {args.cycles}: {last[2]:6.1f} MB"
        f"  (peak {sampler.peak:.1f} MB in {sampler.peak_processes} processes, sampled every"
        f" {sampler.every} s)"
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
