"""Build a digest from a selection: group, score, analyze, and note what it covered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digests import offline
from digests.model import Digest, DigestItem, DigestStats, Trend, Window
from digests.select import Selection
from digests.signals import ScoredStory, build_groups, score_groups
from sources.urls import is_web_url

ITEMS_PER_TREND = 6


@dataclass(frozen=True)
class BuiltDigest:
    digest: Digest
    covered: dict[str, str]  # item id -> role ("cited" in a trend, or "considered")


def digest_id(profile: str, created_at: datetime) -> str:
    return f"{profile}-{created_at:%Y%m%dT%H%M%SZ}"


def build_offline(selection: Selection, now: datetime, notes: tuple[str, ...] = ()) -> BuiltDigest:
    stories = score_groups(build_groups(selection.items), selection)
    chosen = offline.rank(stories, selection.profile.max_trends)
    trends = tuple(
        Trend(
            rank=position,
            title=story.group.items[0].title,
            summary=offline.summary(story),
            why_it_matters=offline.why_it_matters(story),
            status=story.status,
            score=story.score,
            items=_evidence(story),
        )
        for position, story in enumerate(chosen, start=1)
    )
    cited = {item.id for story in chosen for item in story.group.items}
    return assemble(selection, now, offline.ANALYZER, trends, cited, len(stories), notes)


def _evidence(story: ScoredStory) -> tuple[DigestItem, ...]:
    # One item per source first, so the links show the breadth of coverage.
    by_source: dict[str, DigestItem] = {}
    rest: list[DigestItem] = []
    for item in story.group.items:
        if not is_web_url(item.url):
            continue
        entry = DigestItem(
            title=item.title, url=item.url, source=item.sources[0], published=item.published
        )
        if entry.source not in by_source:
            by_source[entry.source] = entry
        else:
            rest.append(entry)
    return tuple([*by_source.values(), *rest][:ITEMS_PER_TREND])


def assemble(
    selection: Selection,
    now: datetime,
    analyzer: str,
    trends: tuple[Trend, ...],
    cited: set[str],
    stories: int,
    notes: tuple[str, ...],
) -> BuiltDigest:
    """The digest and what it covered: every selected item was considered, some cited."""
    covered = {item.id: ("cited" if item.id in cited else "considered") for item in selection.items}
    digest = Digest(
        id=digest_id(selection.profile.name, now),
        profile=selection.profile.name,
        created_at=now,
        analyzer=analyzer,
        window=Window(from_=selection.window_from, to=selection.window_to),
        trends=trends,
        quiet=not trends,
        notes=notes,
        stats=DigestStats(
            items=len(selection.items),
            sources=len({name for item in selection.items for name in item.sources}),
            stories=stories,
        ),
    )
    return BuiltDigest(digest=digest, covered=covered)
