"""Benchmark burst detection: the shared real-world captures as background, injected bursts.

Run from the repo root: python tests/bench/bench_bursts.py

The background is every item of ../shared/data/feeds/real-world/*.xml published in the
fortnight before the captures were taken, replayed at its real timestamps and grouped into
stories by the shipped grouping. Into it go stories whose outlets arrive in known shapes
(a sudden wire story, a slow build, a one-outlet flood that is not a trend) and a topic
carried by several unrelated stories. The detectors run every 10 simulated minutes, as a
collect cycle would, with the shipped thresholds and alert caps; the figures are how long
after a burst's first item it was alerted, how many of its outlets and items had arrived,
the alerts on background stories per simulated day, and missed bursts. Then a simulated year
of hourly baseline updates shows the baselines' memory staying where it started.
"""

from __future__ import annotations

import calendar
import os
import random
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import feedparser  # noqa: E402

from digests import bursts  # noqa: E402
from digests.group import GroupInput, assign_stories  # noqa: E402

CAPTURES = ROOT.parent / "shared" / "data" / "feeds" / "real-world"
START = datetime(2022, 3, 22, tzinfo=UTC)
END = datetime(2022, 4, 6, 8, tzinfo=UTC)
# The captures' last day and a half, when every news feed is dense: the honest false-alert span.
DENSE = datetime(2022, 4, 4, 19, tzinfo=UTC)
STEP = timedelta(minutes=10)
OUTLETS = ["bbc", "guardian", "nyt", "sky", "telegraph", "huffpost", "ft", "verge", "engadget"]


@dataclass(frozen=True)
class Arrival:
    story: str
    source: str
    title: str
    at: datetime


def background() -> list[Arrival]:
    items: list[tuple[str, str, str, datetime]] = []
    for path in sorted(CAPTURES.glob("*.xml")):
        feed = feedparser.parse(path.read_bytes())
        for number, entry in enumerate(feed.entries):
            stamp = entry.get("published_parsed") or entry.get("updated_parsed")
            title = " ".join(str(entry.get("title", "")).split())
            if not stamp or not title:
                continue
            at = datetime.fromtimestamp(calendar.timegm(stamp), UTC)
            if START <= at < END:
                items.append((f"{path.stem}/{number}", path.stem, title, at))
    grouped = assign_stories(
        [GroupInput(item_id=i, title=t, text="", source=s, published=a) for i, s, t, a in items]
    )
    return [Arrival(grouped.stories[i], s, t, a) for i, s, t, a in items]


@dataclass(frozen=True)
class Injected:
    story: str
    shape: str
    arrivals: tuple[Arrival, ...]

    @property
    def multi_outlet(self) -> bool:
        return len({a.source for a in self.arrivals}) > 1


def inject(rng: random.Random) -> list[Injected]:
    """Three of each shape, at different hours of the dense span, outlets drawn at random."""
    shapes = {
        # 6 outlets within 40 minutes, a copy or two each.
        "sudden wire story": [(minutes, 1 + (minutes % 2)) for minutes in (0, 5, 12, 20, 31, 40)],
        # 6 outlets over 4 hours, one every 48 minutes.
        "slow build": [(48 * n, 1) for n in range(6)],
        # 5 outlets over 10 hours, one every 2.5 hours: slower than the shipped window sees.
        "very slow build": [(150 * n, 1) for n in range(5)],
        # One outlet posting 25 updates in 2 hours: busy, but not a trend.
        "one-outlet flood": [(5 * n, 1) for n in range(25)],
    }
    places = ["Zorvath", "Quellmark", "Ibsenholm", "Tarrowby", "Kelsmere", "Ondravia"]
    events = ["dam breach", "port strike", "mayor resigns", "bridge closure", "recall vote"]
    found = []
    for round_number, hour in enumerate((2, 9, 16)):
        for offset, (shape, plan) in enumerate(shapes.items()):
            begin = DENSE + timedelta(hours=hour + 2 * offset, minutes=7)
            story = f"injected-{shape}-{round_number}"
            outlets = rng.sample(OUTLETS, len(OUTLETS))
            name = (
                f"{places[(round_number * 4 + offset) % 6]} {events[(round_number + offset) % 5]}"
            )
            arrivals = []
            for n, (minutes, copies) in enumerate(plan):
                source = outlets[0] if shape == "one-outlet flood" else outlets[n]
                for copy in range(copies):
                    at = begin + timedelta(minutes=minutes + copy)
                    title = f"{name} ({n}.{copy})"
                    arrivals.append(Arrival(story, source, title, at))
            found.append(Injected(story, shape, tuple(arrivals)))
    # A topic across four unrelated stories from different outlets within ten hours.
    for n, what in enumerate(
        ["payments", "airline check-in", "mobile network", "train signalling"]
    ):
        story = f"injected-topic-{n}"
        at = DENSE + timedelta(hours=6 + 3 * n)
        arrivals = [
            Arrival(story, OUTLETS[n], f"Nationwide {what} outage leaves customers stuck", at)
        ]
        found.append(Injected(story, "topic carrier", tuple(arrivals)))
    return found


@dataclass
class Outcome:
    alerts: list[tuple[datetime, str, int]]  # (when, story, outlets at the time)
    topics: list[tuple[datetime, str, tuple[str, ...]]]


def replay(stream: list[Arrival], settings: bursts.BurstSettings) -> Outcome:
    stream = sorted(stream, key=lambda a: (a.at, a.story, a.source))
    baselines = bursts.Baselines.empty()
    caps = bursts.AlertCaps()
    alerted: dict[str, int] = {}
    sent: list[datetime] = []
    outcome = Outcome([], [])
    topics_seen: set[str] = set()
    by_story: dict[str, list[Arrival]] = defaultdict(list)
    horizon = max(settings.window, settings.topic_window)
    position = 0
    now = START
    while now <= END:
        while position < len(stream) and stream[position].at <= now:
            by_story[stream[position].story].append(stream[position])
            position += 1
        active = []
        for story, arrivals in by_story.items():
            if arrivals[-1].at < now - horizon:
                continue
            joined: dict[str, datetime] = {}
            for arrival in arrivals:
                joined.setdefault(arrival.source, arrival.at)
            titles = tuple(dict.fromkeys(a.title for a in arrivals))
            active.append(bursts.StoryActivity(story, titles, joined))
        found = bursts.story_bursts(active, baselines, now, settings)
        recent = sum(1 for moment in sent if moment > now - timedelta(hours=1))
        sizes = {burst.story_id: burst.total_outlets for burst in found}
        for story_id in bursts.worth_alerting(sizes, alerted, recent, caps):
            alerted[story_id] = sizes[story_id]
            sent.append(now)
            outcome.alerts.append((now, story_id, sizes[story_id]))
        for topic in bursts.topic_bursts(active, baselines, now, settings):
            if topic.term not in topics_seen:
                topics_seen.add(topic.term)
                outcome.topics.append((now, topic.term, topic.stories))
        bursts.fold(baselines, active, now, settings)
        now += STEP
    return outcome


def memory_after_a_year(rng: random.Random) -> tuple[int, int, int, float]:
    """Baselines' bytes at the start, after a simulated year of hourly updates (300 terms an
    hour from a vocabulary of a million), the stored blob's size, and the seconds it took."""
    baselines = bursts.Baselines.empty()
    before = baselines.nbytes
    started = time.perf_counter()
    for _ in range(24 * 365):
        counts = {f"term{int(rng.paretovariate(1.1)) % 1_000_000}": 1 for _ in range(300)}
        baselines.terms.update(counts, 300)
        baselines.outlets.update([1, 1, 2])
    seconds = time.perf_counter() - started
    return before, baselines.nbytes, len(baselines.to_bytes()), seconds


def main() -> None:
    rng = random.Random(12)
    settings = bursts.BurstSettings()
    started = time.perf_counter()
    back = background()
    injected = inject(rng)
    stream = back + [a for story in injected for a in story.arrivals]
    outcome = replay(stream, settings)
    seconds = time.perf_counter() - started
    load = os.getloadavg()[0]
    stories = len({a.story for a in back})
    print(
        f"background: {len(back)} real items in {stories} stories, "
        f"{START:%Y-%m-%d} to {END:%Y-%m-%d %H:%M} UTC"
    )
    print(f"settings: {settings}; caps: {bursts.AlertCaps()}")
    print(f"replayed in {seconds:.1f} s (load average {load:.2f})\n")
    print(f"{'shape':<20} {'story':<30} {'delay':>9} {'outlets':>8} {'items':>6}")
    missed = 0
    for story in injected:
        if story.shape == "topic carrier":
            continue
        alert = next((a for a in outcome.alerts if a[1] == story.story), None)
        first = story.arrivals[0].at
        if alert is None:
            verdict = "missed" if story.multi_outlet else "no alert (right)"
            missed += story.multi_outlet
            print(f"{story.shape:<20} {story.story:<30} {verdict:>9}")
            continue
        arrived = [a for a in story.arrivals if a.at <= alert[0]]
        outlets = len({a.source for a in arrived})
        delay = (alert[0] - first).total_seconds() / 60
        print(
            f"{story.shape:<20} {story.story:<30} {delay:>6.0f} min {outlets:>8} {len(arrived):>6}"
        )
    names = {story.story for story in injected}
    false = [a for a in outcome.alerts if a[1] not in names]
    dense_days = (END - DENSE).total_seconds() / 86400
    all_days = (END - START).total_seconds() / 86400
    dense_false = [a for a in false if a[0] >= DENSE]
    print(f"\nmissed multi-outlet bursts: {missed}")
    print(
        f"alerts on background stories: {len(dense_false)} in the dense {dense_days:.1f} days "
        f"({len(dense_false) / dense_days:.2f} per day); {len(false)} in all {all_days:.1f} days "
        f"({len(false) / all_days:.2f} per day)"
    )
    titles = {a.story: a.title for a in back}
    for when, story, outlets in false:
        print(f"  {when:%m-%d %H:%M} {outlets} outlets: {titles.get(story, story)[:80]}")
    print("\ntopic trends (first time each term trended):")
    carriers = {story.story for story in injected if story.shape == "topic carrier"}
    for when, term, carrying in outcome.topics:
        injected_share = sum(1 for s in carrying if s in carriers)
        print(
            f"  {when:%m-%d %H:%M} {term!r} across {len(carrying)} stories "
            f"({injected_share} injected carriers)"
        )
    print("\nthe story window's trade-off (alerts on background stories in the dense span;")
    print("outlets arrived when each shape was alerted, '-' for missed):")
    for hours in (1, 2, 3, 4, 6, 12):
        swept = replay(stream, replace(settings, window=timedelta(hours=hours)))
        noise = [a for a in swept.alerts if a[1] not in names and a[0] >= DENSE]
        shapes: dict[str, list[str]] = defaultdict(list)
        for story in injected:
            if story.shape == "topic carrier":
                continue
            alert = next((a for a in swept.alerts if a[1] == story.story), None)
            arrived = {a.source for a in story.arrivals if alert and a.at <= alert[0]}
            shapes[story.shape].append(str(len(arrived)) if alert else "-")
        row = "; ".join(f"{shape}: {','.join(found)}" for shape, found in shapes.items())
        print(f"  window {hours:>2} h: {len(noise) / dense_days:.2f} per day; {row}")
    before, after, blob, year_seconds = memory_after_a_year(rng)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nbaselines: {before / 1024:.0f} KiB at the start, {after / 1024:.0f} KiB after a "
        f"simulated year (8,760 hourly updates, {year_seconds:.1f} s); stored blob "
        f"{blob / 1024:.0f} KiB; this process's peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
