"""One trendfinder per store: on SQLite an exclusive, non-blocking flock in the state
directory; on Postgres the store's "daemon" advisory lock, which every machine sees.

The daemon and `run --once` both take it, so cron, a timer and the service never work on
the same store at once. The kernel (or the Postgres server, when the connection ends) drops
the lock when the process dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from core.clock import utcnow
from core.errors import EXIT_LOCKED, TrendfinderError

if TYPE_CHECKING:
    from core.config import StorageConfig
    from core.store import Store

LOCK_NAME = "trendfinder.lock"
# A worker's heartbeat newer than this is a live worker (they beat every 20 s by default).
LIVE_HEARTBEAT = timedelta(minutes=2)


class AlreadyRunning(TrendfinderError):
    """Another trendfinder holds the state directory's lock."""

    exit_code = EXIT_LOCKED


class LockUnavailable(TrendfinderError):
    """The lock file cannot be created or written (a read-only or full state directory)."""


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise LockUnavailable(
                f"cannot create the lock file {self.path}: {error.strerror}; trendfinder "
                f"needs to write in {self.path.parent}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"another trendfinder{who} is already working on {self.path.parent}; "
                "not starting a second one"
            ) from None
        try:
            # The pid is only for the message above; the flock is what excludes.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            os.close(fd)
            raise LockUnavailable(
                f"cannot write the lock file {self.path}: {error.strerror}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


@contextmanager
def locked_store(storage: StorageConfig, open_store: Callable[[], Store]) -> Iterator[Store]:
    """The store from `open_store`, held by this process alone: the state directory's lock
    (taken first, so a second SQLite daemon opens nothing), or the Postgres store's."""
    if storage.url is None:
        with StateLock(storage.state_dir), open_store() as store:
            yield store
        return
    with open_store() as store, store.sql.exclusive("daemon") as held:
        if not held:
            raise AlreadyRunning(
                f"another trendfinder is already working on the store at {storage.location} "
                "(it holds the store's daemon lock); not starting a second one"
            )
        # Workers fetch from the job queue; the daemon beside them would fetch again.
        recent = utcnow() - LIVE_HEARTBEAT
        if live := [beat.name for beat in store.workers() if beat.heartbeat_at > recent]:
            raise AlreadyRunning(
                f"trendfinder workers or schedulers ({', '.join(live[:3])}) work on the store "
                f"at {storage.location}; they do the daemon's work (stop them to use it)"
            )
        yield store
