"""The file target: <dir>/<profile>/<timestamp>.{json,md,html}, each written atomically,
plus the profile's archive: an index.html listing every digest, an Atom feed (one entry per
story, updated as it develops) and a page per story (story-<id>.html)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from core.config import FileTarget
from core.digest import Digest
from digests import archive, render
from digests.deliver import DeliveryError

log = logging.getLogger("trendfinder")
INDEX = "index.html"
FEED = "feed.atom"


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file beside `path`, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes 0600; the archive is meant to be read (served, synced) like any file.
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def archived_digests(folder: Path) -> list[Digest]:
    """Every digest written to `folder` (its JSON files); an unreadable one is skipped."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(Digest.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as error:
            log.warning("archive: skipping %s: %s", path, str(error).splitlines()[0])
    return found


def write_digest(digest: Digest, target: FileTarget) -> str:
    if target.directory is None:
        raise DeliveryError("the file target has no directory")
    folder = target.directory / digest.profile
    stem = archive.file_stem(digest)
    try:
        # JSON first: the archive is rebuilt from the JSON files, so it includes this one.
        atomic_write(folder / f"{stem}.json", render.json_text(digest))
        atomic_write(folder / f"{stem}.md", render.markdown(digest))
        atomic_write(folder / f"{stem}.html", render.html(digest, archive_links=True))
        digests = archived_digests(folder)
        told = {trend.story for trend in digest.trends if trend.story}
        for entry in archive.story_entries(digest.profile, digests):
            if entry.story in told:
                atomic_write(folder / f"{entry.stem}.html", entry.page())
        atomic_write(folder / INDEX, archive.index_html(digest.profile, digests))
        atomic_write(folder / FEED, archive.atom_feed(digest.profile, digests))
    except OSError as error:
        raise DeliveryError(f"cannot write to {folder}: {error.strerror or error}") from error
    return str(folder / f"{stem}.md")
