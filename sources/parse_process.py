"""A feed parsing process: `python -m sources.parse_process`, started by sources.workers.

Reads parse_feed calls from stdin and writes their outcomes to stdout, one at a time, each a
pickle behind its 8-byte length. It imports the parser and nothing else: no part of the
daemon, whatever program started it.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import BinaryIO

HEADER = struct.Struct("!Q")


def read_message(stream: BinaryIO) -> bytes | None:
    """One message, or None at the end of the stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    data = stream.read(HEADER.unpack(header)[0])
    return data if len(data) == HEADER.unpack(header)[0] else None


def frame(data: bytes) -> bytes:
    return HEADER.pack(len(data)) + data


def serve(calls: BinaryIO, outcomes: BinaryIO) -> None:
    # Here: sources.workers imports this module for the framing alone.
    from sources.parse import parse_feed

    while (message := read_message(calls)) is not None:
        args, options = pickle.loads(message)  # noqa: S301 (from our parent, over a private pipe)
        try:
            outcome: tuple[bool, object] = (True, parse_feed(*args, **options))
        except Exception as error:
            outcome = (False, error)
        try:
            data = pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
        except Exception:
            data = pickle.dumps((False, RuntimeError(repr(outcome[1]))))
        outcomes.write(frame(data))
        outcomes.flush()


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Outcomes go to the original stdout; anything else printed goes to stderr instead.
    outcomes = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, outcomes)


if __name__ == "__main__":
    main()
