"""A profile's digest archive: a static index page and an Atom feed, from stored digests."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.digest import Digest, Trend
from digests import render

# Feed readers only need the recent past; the index lists everything.
FEED_ENTRIES = 50
_NAMESPACE = uuid.UUID("6f1c1d0e-2b8f-4d5e-9a57-7d1f5c3b9a10")


def file_stem(digest: Digest) -> str:
    """The digest id without its profile: the creation time, plus a suffix when a profile
    had two digests in the same second."""
    return digest.id.removeprefix(f"{digest.profile}-")


def _rfc3339(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class ArchiveEntry:
    digest: Digest

    @property
    def stem(self) -> str:
        return file_stem(self.digest)

    @property
    def headline(self) -> str:
        top = self.digest.trends[0].title if self.digest.trends else "nothing notable"
        return f"{render.title(self.digest)}: {' '.join(top.split())}"

    @property
    def atom_id(self) -> str:
        # Stable per digest, so a rewritten feed never shows an old digest as new.
        return uuid.uuid5(_NAMESPACE, self.digest.id).urn

    @property
    def updated(self) -> str:
        return _rfc3339(self.digest.created_at)

    @property
    def published(self) -> str:
        return self.updated

    @property
    def link(self) -> str:
        return f"{self.stem}.html"

    @property
    def summary(self) -> str:
        return render.byline(self.digest)

    @property
    def content(self) -> str:
        return render.templates().get_template("entry.html.j2").render(digest=self.digest)


def story_stem(story: str) -> str:
    """A story page's file name: the story id, safe in a path and a URL."""
    return "story-" + re.sub(r"[^A-Za-z0-9_-]", "-", story)[:80]


@dataclass(frozen=True)
class StoryEntry:
    """A story across the digests that told it: one feed entry, updated as it develops."""

    profile: str
    story: str
    told: tuple[tuple[Digest, Trend], ...]  # newest first

    @property
    def digest(self) -> Digest:
        return self.told[0][0]

    @property
    def trend(self) -> Trend:
        return self.told[0][1]

    @property
    def stem(self) -> str:
        return story_stem(self.story)

    @property
    def headline(self) -> str:
        return " ".join(self.trend.title.split())

    @property
    def atom_id(self) -> str:
        # Stable per story: a developing story updates its entry instead of adding another.
        return uuid.uuid5(_NAMESPACE, f"story:{self.profile}:{self.story}").urn

    @property
    def updated(self) -> str:
        return _rfc3339(self.digest.created_at)

    @property
    def published(self) -> str:
        return _rfc3339(self.told[-1][0].created_at)

    @property
    def link(self) -> str:
        return f"{self.stem}.html"

    @property
    def summary(self) -> str:
        count, latest = len(self.told), render.stamp(self.digest.created_at)
        return f"In {count} digest{'' if count == 1 else 's'}; latest {latest}"

    @property
    def content(self) -> str:
        return render.templates().get_template("story.html.j2").render(entry=self, page=False)

    def page(self) -> str:
        """The story's page in the archive: its timeline, coverage map and every telling."""
        return render.templates().get_template("story.html.j2").render(entry=self, page=True)


def story_entries(profile: str, digests: Sequence[Digest]) -> list[StoryEntry]:
    """Every story a trend of these digests named, newest telling first, newest story first."""
    told: dict[str, list[tuple[Digest, Trend]]] = {}
    for digest in sorted(digests, key=lambda d: d.created_at, reverse=True):
        for trend in digest.trends:
            if trend.story:
                told.setdefault(trend.story, []).append((digest, trend))
    return [StoryEntry(profile, story, tuple(tellings)) for story, tellings in told.items()]


def _newest_first(digests: Sequence[Digest]) -> list[ArchiveEntry]:
    return [ArchiveEntry(d) for d in sorted(digests, key=lambda d: d.created_at, reverse=True)]


def index_html(profile: str, digests: Sequence[Digest]) -> str:
    return (
        render.templates()
        .get_template("index.html.j2")
        .render(profile=profile, entries=_newest_first(digests), story_stem=story_stem)
    )


def atom_feed(profile: str, digests: Sequence[Digest]) -> str:
    """One entry per story, updated (same id, new `updated`) each time a digest tells it
    again; a digest from before stories had ids keeps its own entry."""
    untold = [d for d in digests if not any(trend.story for trend in d.trends)]
    entries: list[ArchiveEntry | StoryEntry] = [
        *story_entries(profile, digests),
        *_newest_first(untold),
    ]
    entries.sort(key=lambda entry: entry.updated, reverse=True)
    entries = entries[:FEED_ENTRIES]
    updated = entries[0].updated if entries else _rfc3339(datetime(1970, 1, 1, tzinfo=UTC))
    return (
        render.templates()
        .get_template("atom.xml.j2")
        .render(
            profile=profile,
            entries=entries,
            updated=updated,
            feed_id=uuid.uuid5(_NAMESPACE, f"profile:{profile}").urn,
        )
    )
