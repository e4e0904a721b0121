"""Named crash points: the reliability tests kill the process at an exact spot, like a power cut.

Set `TRENDFINDER_CRASH_AT=NAME` (or `NAME:N`, the N-th time the point is reached) and the
process sends itself SIGKILL there: no cleanup, no flush, no finally blocks, nothing but
what the kernel and SQLite already hold. Unset (always, outside the tests), a point costs
one dict lookup. The points and where they sit are listed in POINTS and in DEVELOPERS.md.
"""

from __future__ import annotations

import os
import signal

ENV = "TRENDFINDER_CRASH_AT"

POINTS: dict[str, str] = {
    "collect.fetched": "a source was fetched and parsed; nothing of it is stored yet",
    "collect.storing": "inside a batch's transaction, after one source's items were written",
    "collect.stored": "a batch of sources was committed; the collect run is not finished",
    "group.assigning": "stories were computed for new items; not stored yet",
    "group.assigned": "story assignments were committed",
    "model.request": "the model request is about to be sent",
    "model.answered": "the model's answer arrived; not validated yet",
    "digest.saving": "a digest is built; save_digest is about to run",
    "digest.inside_save": "inside save_digest's transaction: digest and items written, "
    "deliveries not queued",
    "digest.saved": "save_digest committed; the digest run is not finished",
    "alert.saving": "an alert digest is built; save_alert is about to run",
    "alert.inside_save": "inside save_alert's transaction: alert and digest written, "
    "deliveries not queued",
    "alert.saved": "save_alert committed; the alert run is not finished",
    "deliver.sending": "a delivery is marked 'sending'; nothing has left yet",
    "deliver.part_sent": "Slack accepted one message of a digest; it is not recorded yet",
    "deliver.sent": "the target accepted the digest; it is not recorded as sent yet",
    "deliver.recorded": "the delivery is recorded as sent; the next one has not started",
}


def _armed(spec: str) -> dict[str, int]:
    """{point: how many more times it is passed before the kill}, from the variable."""
    if not spec:
        return {}
    name, _, nth = spec.partition(":")
    if name not in POINTS or (nth and not (nth.isdigit() and int(nth) > 0)):
        known = ", ".join(POINTS)
        raise ValueError(f"{ENV}={spec!r}: expected NAME or NAME:N (N >= 1), NAME one of {known}")
    return {name: int(nth or 1)}


_ARMED = _armed(os.environ.get(ENV, ""))


def crash_point(name: str) -> None:
    """Die here with SIGKILL if the tests asked for this point (this many times reached)."""
    remaining = _ARMED.get(name)
    if remaining is None:
        return
    if remaining > 1:
        _ARMED[name] = remaining - 1
        return
    os.kill(os.getpid(), signal.SIGKILL)
