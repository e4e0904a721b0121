"""Hand freed memory back to the OS: a long-running daemon's resident size follows its work.

Grouping and digests allocate large numpy and scipy temporaries (megabytes each) and free
them at the end of each run. glibc raises its mmap threshold after the first such free, so
later ones come from the heap, where freed space below live objects is never returned: the
daemon's RSS climbed by tens of MB a cycle while its live heap stayed flat. A fixed threshold
keeps every large block in its own mapping, unmapped when freed, and a trim after each job
returns the heap's free pages. No-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks of this size or more get a mapping of their own (glibc's default before it adapts).
MMAP_THRESHOLD = 128 * 1024
# Free heap above this much at the top is returned at once.
TRIM_THRESHOLD = 1024 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def keep_heap_small() -> None:
    """Fix glibc's thresholds for this process (call once at start)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def release() -> None:
    """Return the heap's free pages to the OS (after a job; takes milliseconds)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
