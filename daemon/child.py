"""Run one pure, memory-hungry computation in a short-lived child process.

Grouping 15,000 items, or ranking them for an offline digest (WordLlama embeddings, numpy),
allocates a few hundred MB of temporaries. Freed, most of that stays in this process: glibc
keeps freed arenas and fragmented heap, and the long-running daemon's resident size climbed
past 450 MB over ten cycles with ~90 MB live (daemon.memory's thresholds and trims did not
stop it). A child's memory all goes back to the OS when it exits.
Only values cross: the arguments and the result are pickled; the store stays in this process,
so what is written, and when, is unchanged.

The standard library does the job: a ProcessPoolExecutor of one process for one call, shut
down after it (a fresh process per call, and nothing idle between runs). Its context is
forkserver, not fork: the daemon has APScheduler's threads, and forking a threaded process
may copy a lock held by another thread. The fork server is started once, with the grouping
and digest libraries imported (numpy, scipy, wordfreq: about a second), so each child is forked
from it ready to work instead of importing them again; it holds no data of any run.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import select
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import ForkServerContext
from typing import ParamSpec, TypeVar

from core.errors import TrendfinderError

# Imported once by the fork server, so that each child starts with them loaded (the main
# module too, as multiprocessing does by default: else each child would run it again).
PRELOAD = ["__main__", "digests.group", "digests.build"]

P = ParamSpec("P")
R = TypeVar("R")


class ChildDied(TrendfinderError):
    """The child process stopped before answering (killed, out of memory)."""


@functools.cache
def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _exit_with(daemon: int) -> None:
    """In the child: exit as soon as the daemon does. A child holds the fork server's
    liveness pipe, so one computing for a killed daemon would keep both running."""
    try:
        handle = os.pidfd_open(daemon)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        return  # no pidfd (not Linux 5.3+): the child ends when it writes its answer

    def watch() -> None:
        select.select([handle], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-daemon", daemon=True).start()


def run_in_child(work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`work(*args, **kwargs)` in a fresh child process; its exceptions are raised here.

    Raises ChildDied when the process stops without an answer. `work` must be a module-level
    function and its arguments and result picklable values.
    """
    with ProcessPoolExecutor(
        1,
        mp_context=_context(),
        initializer=_exit_with,
        initargs=(os.getpid(),),
        max_tasks_per_child=1,
    ) as pool:
        future = pool.submit(work, *args, **kwargs)
        try:
            return future.result()
        except BrokenProcessPool as error:
            raise ChildDied(
                f"the {work.__name__} process died before answering (killed, or out of memory)"
            ) from error
