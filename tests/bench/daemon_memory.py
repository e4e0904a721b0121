"""Memory of a long-running daemon: `trendfinder run` polling 1,000 loopback feeds.

Every feed gains one item per cycle, so each cycle stores 1,000 new items, and a digest is
built every 15 s; with --static the feeds never change after the first fetch (each cycle is
1,000 conditional GETs answered 304), which isolates the daemon's own memory from the growth
of the store. A cycle ends when every feed has been fetched once more. Prints the daemon's
resident memory (RSS) after cycle 1 and after the last cycle, side by side.

    python tests/bench/daemon_memory.py [--feeds 1000] [--cycles 20] [--static]

Goal: no growth beyond noise between cycle 1 and cycle 20, and under 300 MB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


def helpers_mb(pid: int) -> float:
    """Resident memory of `pid`'s descendants (the fork server, a grouping or digest child),
    in MB; pages they share are counted in each."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rpartition(")")[2].split()[1]
            )
        except (ValueError, OSError):
            continue
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    total = 0.0
    for member in family - {pid}:
        try:
            total += rss_mb(member)[0]
        except (OSError, KeyError):
            continue  # it exited meanwhile
    return total


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
        readings: dict[int, tuple[float, float, float]] = {}
        with daemon(config) as run:
            pid = run.process.pid
            for cycle in range(1, args.cycles + 1):
                deadline = time.monotonic() + 600
                while min(farm.requests[n] for n in range(args.feeds)) < cycle:
                    if run.process.poll() is not None or time.monotonic() > deadline:
                        print(run.log()[-3000:], file=sys.stderr)
                        return 1
                    time.sleep(0.2)
                current, peak = rss_mb(pid)
                readings[cycle] = (current, peak, time.monotonic() - started)
                print(
                    f"cycle {cycle:>2}: RSS {current:6.1f} MB (peak {peak:6.1f} MB) "
                    f"at {readings[cycle][2]:6.1f} s; helper processes {helpers_mb(pid):6.1f} MB",
                    flush=True,
                )
                if not args.static:
                    farm.publish()
            run.signal(15)
            code = run.process.wait(timeout=60)
        digests = len(list((folder / "out" / "brief").glob("*.json")))
        items = (folder / "state" / "trendfinder.db").stat().st_size / 1e6
    first, last = readings[1], readings[args.cycles]
    print()
    workload = "static feeds" if args.static else "one new item per feed per cycle"
    print(f"feeds: {args.feeds} ({workload}), cycles: {args.cycles}, digests: {digests}")
    print(f"store size at the end: {items:.1f} MB; daemon exit code on SIGTERM: {code}")
    print(f"RSS after cycle 1:  {first[0]:6.1f} MB")
    print(f"RSS after cycle {args.cycles}: {last[0]:6.1f} MB  (peak {last[1]:.1f} MB)")
    print(f"growth: {last[0] - first[0]:+.1f} MB ({(last[0] / first[0] - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
