"""Adding a source to the config file from the web app (serve.allow_source_edits).

ruamel.yaml round-trips the file, so its comments, order and ${VAR} references stay as the
operator wrote them; the new text is validated with the config models before it replaces
the file atomically, with the file's own permissions (a config holding secrets stays 0600).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from core.config import Config, parse_config
from core.errors import ConfigError


def writable(path: Path | None) -> bool:
    return path is not None and path.is_file() and os.access(path, os.W_OK)


def add_source(path: Path, entry: dict[str, object]) -> Config:
    """Append `entry` to the file's `sources` and return the config it now holds; raise
    ConfigError naming the problem (the file is then left as it was)."""
    yaml = YAML()  # round-trip: comments and layout kept
    yaml.preserve_quotes = True
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.load(text)
    except YAMLError as error:
        raise ConfigError(str(path), [f"cannot edit: {error}"]) from None
    sources = document.get("sources") if hasattr(document, "get") else None
    if not isinstance(sources, list):
        raise ConfigError(str(path), ["cannot edit: it has no sources list to add to"])
    sources.append(entry)
    written = io.StringIO()
    yaml.dump(document, written)
    config = parse_config(written.getvalue(), str(path), base=path.resolve().parent)
    _replace(path, written.getvalue())
    return config


def _replace(path: Path, text: str) -> None:
    """Temp file beside it with its mode, fsync, rename. Not files.atomic_write: that makes
    archive files world-readable, and a config may hold secrets."""
    mode = path.stat().st_mode & 0o777
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
