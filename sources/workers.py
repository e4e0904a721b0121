"""Parse feed bodies off the event loop: in worker processes when a cycle is large.

feedparser costs ~5 ms of CPU for a 30-entry feed, so a thousand feeds are seconds of
parsing that one process would do while its downloads wait. Worker processes put the
other cores to work; a small cycle parses inline, where starting processes costs more.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from daemon.config import CollectConfig
from sources.parse import ParsedFeed, parse_feed

log = logging.getLogger("trendfinder")

# Below this many sources in a cycle, starting worker processes costs more than it saves.
POOL_MIN_SOURCES = 64


class ParserDied(Exception):
    """A parsing process died (killed, out of memory) while it held this body."""


def _exit_with_parent() -> None:
    """In a worker: end when the daemon ends, however it ends.

    A worker waits for work on a queue it also holds the writing end of, so it never sees
    the daemon go; after a SIGKILL (the OOM killer, a power-cut test) it would wait forever,
    holding memory and the daemon's stderr.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the spawn pipe closes: it died
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class FeedParser:
    """Parses feed bodies for one collection cycle; close() when the cycle ends."""

    def __init__(self, config: CollectConfig, sources: int) -> None:
        self._config = config
        workers = config.parse_processes
        self._workers = (os.cpu_count() or 1) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if self._workers > 0 and sources >= POOL_MIN_SOURCES:
            self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, never fork: the daemon has threads (scheduler, HTTP pools).
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
        )

    async def parse(
        self, body: bytes, url: str, headers: Mapping[str, str], now: datetime, source: str
    ) -> ParsedFeed:
        """parse_feed with the configured limits: raises NotAFeed as it does, or ParserDied."""
        call = functools.partial(
            parse_feed,
            body,
            url,
            dict(headers),
            now,
            source=source,
            max_items=self._config.max_items_per_source,
            max_text_chars=self._config.max_text_chars,
        )
        pool = self._pool
        if pool is None:
            return call()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except BrokenProcessPool:
            # This body may be what killed it: never retry it here; fresh workers for the rest.
            if self._pool is pool:
                log.warning("a feed parsing process died; starting new ones")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            raise ParserDied("the feed parsing process died while reading it") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
