"""A profile's digest archive: a static index page and an Atom feed, from stored digests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.digest import Digest
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
    def content(self) -> str:
        return render.templates().get_template("entry.html.j2").render(digest=self.digest)


def _newest_first(digests: Sequence[Digest]) -> list[ArchiveEntry]:
    return [ArchiveEntry(d) for d in sorted(digests, key=lambda d: d.created_at, reverse=True)]


def index_html(profile: str, digests: Sequence[Digest]) -> str:
    return (
        render.templates()
        .get_template("index.html.j2")
        .render(profile=profile, entries=_newest_first(digests))
    )


def atom_feed(profile: str, digests: Sequence[Digest]) -> str:
    entries = _newest_first(digests)[:FEED_ENTRIES]
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
