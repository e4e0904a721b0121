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
may copy a lock held by another thread. The fork server imports nothing heavy, so that
between runs it costs a few MB: with numpy, scipy and the digest modules preloaded it held
about 70 MB (PSS) all the time and took 11-12 s to start at load 7; each child now imports
them itself (a one-item grouping in a child: 6.5-8.5 s instead of 1.8 s at load 7.4).
Only long-running processes use it (Runner's `isolated`): a one-shot command exits anyway.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import select
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import ForkServerContext
from typing import ParamSpec, TypeVar

from core.errors import TrendfinderError
from digests.grouping import Assignment, GroupingSettings, GroupInput

# Imported once by the fork server: the main module, as multiprocessing does by default (else
# each child would run it again); not the grouping and digest libraries (see above).
PRELOAD = ["__main__"]

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


def assign_stories(
    new: Sequence[GroupInput],
    anchors: Sequence[tuple[GroupInput, str]],
    *,
    settings: GroupingSettings,
) -> Assignment:
    """Story grouping (digests.group.assign_stories) with its module imported where it runs:
    in a child, its scipy never loads in the daemon."""
    from digests import group

    return group.assign_stories(new, anchors, settings=settings)
