"""Delivery targets: each sends one stored digest somewhere, or raises DeliveryError."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from core.config import EmailTarget, FileTarget, SlackTarget, Target
from core.digest import Digest
from core.errors import TrendfinderError


class DeliveryError(TrendfinderError):
    """A delivery attempt failed; the message is what the operator sees in `status`.

    `retry_delay` is how long to wait before the next attempt when the far end said so
    (Slack's 429). `permanent`: trying again cannot help until the operator changes
    something (a refused login, a webhook that is gone, an untrusted certificate), so the
    outbox gives up at once.
    """

    def __init__(
        self, message: str, *, retry_delay: timedelta | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_delay = retry_delay
        self.permanent = permanent


def _forget(parts: int) -> None:
    pass


@dataclass(frozen=True)
class Progress:
    """How far an earlier attempt got with a multi-part delivery (Slack messages).

    A target skips the `done` parts and calls `record` with the new count after each part,
    so a retry continues where the last attempt stopped instead of posting parts again.
    """

    done: int = 0
    record: Callable[[int], None] = field(default=_forget)


def send(
    digest: Digest, target: Target, progress: Progress | None = None, *, archive: bool = False
) -> str:
    """Deliver `digest` to `target` and return where it went (for the log). `archive`: the
    digest's profile keeps an archive (a file target), which a Slack message points to."""
    progress = progress or Progress()
    if isinstance(target, FileTarget):
        from digests.deliver.files import write_digest

        return write_digest(digest, target)
    if isinstance(target, EmailTarget):
        from digests.deliver.mail import send_email

        return send_email(digest, target)
    if isinstance(target, SlackTarget):
        from digests.deliver.slack import post_digest

        return post_digest(digest, target, progress, archive=archive)
    raise DeliveryError(
        f"the {target.kind} target is not available in this version", permanent=True
    )
