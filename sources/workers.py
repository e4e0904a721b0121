"""Parse feed bodies off the event loop: in worker processes when a cycle is large.

feedparser costs a few ms of CPU for a 30-entry feed, so a thousand feeds are seconds of
parsing that one process would do while its downloads wait. Worker processes put the
other cores to work; a small cycle parses inline, where starting processes costs more.

The workers are plain subprocesses (sources.parse_process) talking over pipes the event
loop reads, not a multiprocessing pool: a spawned pool process imports the parent's main
script, which for the installed `trendfinder` command is the whole daemon (1.5 s of CPU
and 100 MB per process, every cycle), and its helper threads cost the event loop more CPU
per feed than reading a pipe does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from daemon.config import CollectConfig
from sources.parse import ParsedFeed, parse_feed
from sources.parse_process import HEADER, frame

log = logging.getLogger("trendfinder")

# Below this many sources in a cycle, starting worker processes costs more than it saves.
POOL_MIN_SOURCES = 64
# Where `sources` is, so the worker finds it whatever the daemon's working directory.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class ParserDied(Exception):
    """A parsing process died (killed, out of memory) while it held this body."""


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.usable = True  # False once the protocol state is unknown: it is then killed

    @classmethod
    async def start(cls) -> _Worker:
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sources.parse_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        return cls(process)

    async def call(self, message: bytes) -> tuple[bool, object]:
        assert self.process.stdin and self.process.stdout
        self.usable = False
        try:
            self.process.stdin.write(frame(message))
            await self.process.stdin.drain()
            header = await self.process.stdout.readexactly(HEADER.size)
            data = await self.process.stdout.readexactly(HEADER.unpack(header)[0])
        except (ConnectionError, asyncio.IncompleteReadError):
            raise ParserDied("the feed parsing process died while reading it") from None
        outcome: tuple[bool, object] = pickle.loads(data)  # noqa: S301 (our own child)
        self.usable = True
        return outcome

    async def stop(self) -> None:
        process = self.process
        if process.returncode is None:
            if self.usable and process.stdin:
                process.stdin.close()  # at the end of its input it exits
            else:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class FeedParser:
    """Parses feed bodies for one collection cycle; `await aclose()` when the cycle ends."""

    def __init__(self, config: CollectConfig, sources: int) -> None:
        self._config = config
        workers = config.parse_processes
        workers = (os.cpu_count() or 1) if workers is None else workers
        self._size = workers if sources >= POOL_MIN_SOURCES else 0
        self._started = 0
        self._closed = False
        self._idle: list[_Worker] = []
        self._freed = asyncio.Condition()

    async def parse(
        self, body: bytes, url: str, headers: Mapping[str, str], now: datetime, source: str
    ) -> ParsedFeed:
        """parse_feed with the configured limits: raises NotAFeed as it does, or ParserDied."""
        options = {
            "source": source,
            "max_items": self._config.max_items_per_source,
            "max_text_chars": self._config.max_text_chars,
        }
        if not self._size:
            return parse_feed(
                body,
                url,
                headers,
                now,
                source=source,
                max_items=self._config.max_items_per_source,
                max_text_chars=self._config.max_text_chars,
            )
        message = pickle.dumps(((body, url, dict(headers), now), options), pickle.HIGHEST_PROTOCOL)
        worker = await self._take()
        try:
            ok, result = await worker.call(message)
        finally:
            await self._give_back(worker)
        if not ok:
            assert isinstance(result, BaseException)
            raise result
        assert isinstance(result, ParsedFeed)
        return result

    async def _take(self) -> _Worker:
        async with self._freed:
            while not self._idle:
                if self._closed:
                    raise ParserDied("the collection cycle is over")
                if self._started < self._size:
                    self._started += 1
                    try:
                        return await _Worker.start()
                    except BaseException:
                        self._started -= 1
                        raise
                await self._freed.wait()
            return self._idle.pop()

    async def _give_back(self, worker: _Worker) -> None:
        if worker.usable and not self._closed:
            self._idle.append(worker)
        else:
            if not worker.usable:
                # Dead, or cancelled mid-call: this body may be what killed it, so it is
                # not retried here; a fresh worker takes its place for the rest.
                log.warning("a feed parsing process died or was interrupted; starting a new one")
            self._started -= 1
            await worker.stop()
        async with self._freed:
            self._freed.notify()

    async def aclose(self) -> None:
        """Stop the workers; one still parsing (its caller cancelled) stops when it returns."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            await worker.stop()
