"""Digests for delivery tests: an ordinary one, a hostile one, and a huge one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.digest import (
    Bucket,
    Coverage,
    Digest,
    DigestItem,
    DigestStats,
    Joined,
    StoryTimeline,
    Trend,
    Window,
)

CREATED = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
SCRIPT = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'
JS_URL = "javascript:alert(document.cookie)"


def item(
    n: int, *, title: str | None = None, url: str | None = None, source: str = ""
) -> DigestItem:
    return DigestItem(
        title=title or f"Outlet report number {n} on the story",
        url=url or f"https://news{n % 4}.example/story/{n}",
        source=source or f"outlet-{n % 4}",
        published=CREATED - timedelta(hours=n, minutes=7),
    )


def trend(
    rank: int, *, title: str | None = None, summary: str | None = None, items: int = 3
) -> Trend:
    return Trend(
        rank=rank,
        title=title or f"Story {rank}: regulators and vendors respond to the cloud outage",
        summary=summary
        or "Several outlets report the same event; services were down for hours and "
        "customers are asking for compensation.",
        why_it_matters="Reported by 3 sources; matches this digest's focus.",
        status="developing" if rank == 2 else "new",
        score=10.0 - rank,
        items=tuple(item(rank * 10 + n) for n in range(items)),
    )


def digest(
    trends: tuple[Trend, ...] | None = None,
    *,
    profile: str = "morning-brief",
    created: datetime = CREATED,
    notes: tuple[str, ...] = ("Ranked by the offline analyzer (no OPENAI_API_KEY set).",),
) -> Digest:
    return Digest(
        id=f"{profile}-{created:%Y%m%dT%H%M%SZ}",
        profile=profile,
        created_at=created,
        analyzer="offline",
        window=Window(from_=created - timedelta(days=1), to=created),
        trends=trends if trends is not None else tuple(trend(n) for n in range(1, 5)),
        quiet=trends == (),
        notes=notes,
        stats=DigestStats(items=120, sources=12, stories=40),
    )


def hostile() -> Digest:
    """Feed titles and model text that try to inject markup, scripts and links."""
    bad_items = (
        item(1, title=f"Breaking {SCRIPT} news", source=f"Evil {IMG} Outlet"),
        item(2, title="Click me", url=JS_URL),
        item(3, title="Slack <!channel> & <https://evil.example|fake link>"),
        item(4, title="Quote trick", url='https://ok.example/"><script>alert(2)</script>'),
    )
    return digest(
        (
            Trend(
                rank=1,
                title=f"Headline with {SCRIPT} and {IMG}",
                summary=f"Summary [link](javascript:alert(1)) {IMG} <b>bold</b> & more",
                why_it_matters=f"Because {SCRIPT}",
                items=bad_items,
            ),
        ),
        notes=(f"Note with {IMG}",),
    )


def huge(trends: int = 60, summary_chars: int = 5000) -> Digest:
    words = ("outage & <recovery> " * (summary_chars // 20 + 1))[:summary_chars]
    return digest(tuple(trend(n, summary=words, items=6) for n in range(1, trends + 1)))


def history(trend: Trend, *, shape: tuple[int, ...] = (0, 0, 1, 0, 2, 5, 3, 1)) -> Trend:
    """The trend with a timeline (items per hour, oldest first, ending at CREATED's hour) and
    a coverage map: outlet-0 broke it, the others followed, outlet-9 stayed silent."""
    end = CREATED.replace(minute=0)
    buckets = tuple(
        Bucket(
            start=end - timedelta(hours=len(shape) - 1 - n),
            items=count,
            new_outlets=1 if count >= 2 else 0,
        )
        for n, count in enumerate(shape)
    )
    first = next(bucket.start for bucket in buckets if bucket.items)
    peak = max(buckets, key=lambda bucket: bucket.items)
    return trend.model_copy(
        update={
            "story": f"story-{trend.rank}",
            "timeline": StoryTimeline(
                first_seen=first + timedelta(minutes=10),
                peak=peak.start,
                peak_items=peak.items,
                trajectory="rising",
                buckets=buckets,
            ),
            "coverage": Coverage(
                broke=Joined(source="outlet-0", at=first + timedelta(minutes=10)),
                followed=(
                    Joined(source="outlet-1", at=first + timedelta(minutes=25)),
                    Joined(source="outlet-2", at=first + timedelta(hours=2, minutes=5)),
                ),
                silent=("outlet-9",),
            ),
        }
    )
