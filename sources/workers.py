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
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import cast

from core.config import CollectConfig
from core.errors import SourceError
from sources.items import ParsedFeed
from sources.parse_process import HEADER, frame

# The parser (feedparser, lxml) is imported when a body is to be parsed here, not with this
# module: a cycle of unchanged feeds (all 304) never needs it, nor does this process when
# the parsing processes parse (their answers are sources.items' values).

log = logging.getLogger("trendfinder")

# Below this many sources in a cycle, starting worker processes costs more than it saves.
POOL_MIN_SOURCES = 64
# Where `sources` is, so the worker finds it whatever the daemon's working directory.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


# A parse still running after this long is stopped (its process is killed): the feed fails,
# the feeds queued behind it go to another process.
PARSE_TIMEOUT = 60.0
# How many times a feed queued behind one that killed its process is sent to another.
_RETRIES = 2


class ParserDied(SourceError):
    """A parsing process died (killed, out of memory, stopped for taking too long) while it
    was reading this body."""


class _Requeue(SourceError):
    """The process died while this body waited behind another: send it to another one."""


# Bodies sent to a worker ahead of its answers, so it keeps parsing while this process is
# busy elsewhere (a batch of store writes holds the event loop for tens of milliseconds).
_DEPTH = 8


class _Worker:
    """One parsing process: calls go out on its stdin, answers come back in order."""

    def __init__(self, process: asyncio.subprocess.Process, timeout: float) -> None:
        self.process = process
        self.pending: deque[asyncio.Future[tuple[bool, object]]] = deque()
        self.alive = True
        self._timeout = timeout
        self._timed_out = False
        self._loop = asyncio.get_running_loop()
        self._head_since = self._loop.time()  # when the oldest pending body reached the front
        self._reader = asyncio.create_task(self._read_answers())
        self._watchdog = asyncio.create_task(self._watch())

    @classmethod
    async def start(cls, timeout: float) -> _Worker:
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sources.parse_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        return cls(process, timeout)

    async def call(self, message: bytes) -> tuple[bool, object]:
        assert self.process.stdin
        if not self.alive:
            raise ParserDied("the feed parsing process died")
        answer: asyncio.Future[tuple[bool, object]] = self._loop.create_future()
        if not self.pending:
            self._head_since = self._loop.time()
        self.pending.append(answer)
        try:
            self.process.stdin.write(frame(message))
            await self.process.stdin.drain()
            return await answer
        except ConnectionError:
            return await answer  # it died: the reader fails every pending call
        except asyncio.CancelledError:
            answer.cancel()  # its answer still comes, in order, and is dropped
            raise

    async def _read_answers(self) -> None:
        assert self.process.stdout
        try:
            while True:
                header = await self.process.stdout.readexactly(HEADER.size)
                data = await self.process.stdout.readexactly(HEADER.unpack(header)[0])
                answer = self.pending.popleft()
                self._head_since = self._loop.time()
                if not answer.cancelled():
                    answer.set_result(pickle.loads(data))  # noqa: S301 (our own child)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        self.alive = False
        self._watchdog.cancel()
        if not self.pending:
            return
        # The body at the front is the one it was reading: it fails; those queued behind it
        # go to another process.
        if self._timed_out:
            reason = f"parsing it took longer than {self._timeout:g} s, so it was stopped"
        else:
            reason = "the feed parsing process died while reading it"
        log.warning("a feed parsing process stopped (%s); starting a new one", reason)
        head = self.pending.popleft()
        if not head.cancelled():
            head.set_exception(ParserDied(reason))
        while self.pending:
            answer = self.pending.popleft()
            if not answer.cancelled():
                answer.set_exception(_Requeue())

    async def _watch(self) -> None:
        """Kill the process when the body at the front has been parsing for too long."""
        while True:
            waited = self._loop.time() - self._head_since
            if self.pending and waited >= self._timeout:
                self._timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                return
            await asyncio.sleep(max(0.05, self._timeout - waited if self.pending else 1.0))

    async def stop(self) -> None:
        process = self.process
        if process.returncode is None and process.stdin:
            process.stdin.close()  # at the end of its input it exits
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        await self._reader
        self._watchdog.cancel()


class FeedParser:
    """Parses feed bodies for one collection cycle; `await aclose()` when the cycle ends."""

    def __init__(self, config: CollectConfig, sources: int, timeout: float = PARSE_TIMEOUT) -> None:
        self._config = config
        self._timeout = timeout
        workers = config.parse_processes
        workers = (os.cpu_count() or 1) if workers is None else workers
        self._size = workers if sources >= POOL_MIN_SOURCES else 0
        self._workers: list[_Worker] = []
        self._starting = 0
        self._closed = False
        self._freed = asyncio.Condition()
        self._spawning: set[asyncio.Task[_Worker]] = set()

    async def parse(
        self, body: bytes, url: str, headers: Mapping[str, str], now: datetime, source: str
    ) -> ParsedFeed:
        """parse_feed with the configured limits: raises NotAFeed as it does, or ParserDied."""
        if not self._size:
            from sources.parse import parse_feed

            return parse_feed(
                body,
                url,
                headers,
                now,
                source=source,
                max_items=self._config.max_items_per_source,
                max_text_chars=self._config.max_text_chars,
            )
        options = {
            "source": source,
            "max_items": self._config.max_items_per_source,
            "max_text_chars": self._config.max_text_chars,
        }
        message = pickle.dumps(((body, url, dict(headers), now), options), pickle.HIGHEST_PROTOCOL)
        for attempt in range(_RETRIES + 1):
            worker = await self._worker()
            try:
                ok, result = await worker.call(message)
                break
            except _Requeue:
                if attempt == _RETRIES:
                    raise ParserDied(
                        "feed parsing processes kept dying before reaching it"
                    ) from None
            finally:
                async with self._freed:
                    self._freed.notify()
        if not ok:
            assert isinstance(result, BaseException)
            raise result
        return cast(ParsedFeed, result)

    def start(self) -> None:
        """Start the parsing processes now, so that their start (imports, 0.1-0.2 s of CPU
        each) overlaps the first downloads instead of delaying the first parse."""
        for _ in range(self._size - len(self._workers) - self._starting):
            self._starting += 1
            self._spawning.add(asyncio.create_task(self._spawn()))

    async def _worker(self) -> _Worker:
        """The least busy worker with room for one more body; a new one while there are few."""
        async with self._freed:
            while True:
                if self._closed:
                    raise ParserDied("the collection cycle is over")
                alive = [worker for worker in self._workers if worker.alive]
                if len(alive) + self._starting < self._size:
                    break
                worker = min(alive, key=lambda w: len(w.pending), default=None)
                if worker and len(worker.pending) < _DEPTH:
                    return worker
                await self._freed.wait()
            self._starting += 1
        return await self._spawn()

    async def _spawn(self) -> _Worker:
        """A new worker (counted in `_starting` by the caller until it runs)."""
        try:
            worker = await _Worker.start(self._timeout)
        finally:
            self._starting -= 1
        self._workers.append(worker)
        async with self._freed:
            self._freed.notify_all()  # room for more bodies
        return worker

    async def aclose(self) -> None:
        self._closed = True
        # Those still starting are stopped with the others.
        await asyncio.gather(*self._spawning, return_exceptions=True)
        workers, self._workers = self._workers, []
        for worker in workers:
            await worker.stop()
