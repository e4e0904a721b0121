"""The file target: <dir>/<profile>/<timestamp>.{md,json}, each written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from daemon.config import FileTarget
from digests import render
from digests.deliver import DeliveryError
from digests.model import Digest


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file beside `path`, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_digest(digest: Digest, target: FileTarget) -> str:
    if target.directory is None:
        raise DeliveryError("the file target has no directory")
    folder = target.directory / digest.profile
    stem = f"{digest.created_at:%Y%m%dT%H%M%SZ}"
    try:
        atomic_write(folder / f"{stem}.json", render.json_text(digest))
        atomic_write(folder / f"{stem}.md", render.markdown(digest))
    except OSError as error:
        raise DeliveryError(f"cannot write to {folder}: {error.strerror or error}") from error
    return str(folder / f"{stem}.md")
