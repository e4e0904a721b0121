"""Delivery targets: each sends one stored digest somewhere, or raises DeliveryError."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from core.config import (
    AppriseTarget,
    DiscordTarget,
    EmailTarget,
    FileTarget,
    SlackTarget,
    Target,
    TelegramTarget,
    WebhookTarget,
)
from core.crashpoints import crash_point
from core.digest import Digest
from core.errors import TrendfinderError
from core.votes import VoteLinks


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

    def part_sent(self, parts: int) -> None:
        """A multi-message target's part was accepted: record it before the next one."""
        crash_point("deliver.part_sent")
        self.record(parts)


def wants(target: Target, digest: Digest) -> bool:
    """Whether `target` takes this digest: its `min_trends` and `only_alerts` filters."""
    if not isinstance(target, DiscordTarget | WebhookTarget | TelegramTarget | AppriseTarget):
        return True
    if target.only_alerts and digest.kind != "alert":
        return False
    return len(digest.trends) >= target.min_trends


def send(
    digest: Digest,
    target: Target,
    progress: Progress | None = None,
    *,
    archive: bool = False,
    votes: VoteLinks | None = None,
) -> str:
    """Deliver `digest` to `target` and return where it went (for the log). `archive`: the
    digest's profile keeps an archive (a file target), which a Slack message points to;
    `votes`: signed vote links that the email and Slack bodies carry."""
    progress = progress or Progress()
    if isinstance(target, FileTarget):
        from digests.deliver.files import write_digest

        return write_digest(digest, target)
    if isinstance(target, EmailTarget):
        from digests.deliver.mail import send_email

        return send_email(digest, target, votes)
    if isinstance(target, SlackTarget):
        from digests.deliver.slack import post_digest

        return post_digest(digest, target, progress, archive=archive, votes=votes)
    if isinstance(target, DiscordTarget):
        from digests.deliver.discord import post_to_discord

        return post_to_discord(digest, target, progress)
    if isinstance(target, WebhookTarget):
        from digests.deliver.webhook import post_to_webhook

        return post_to_webhook(digest, target)
    if isinstance(target, TelegramTarget):
        from digests.deliver.telegram import send_to_telegram

        return send_to_telegram(digest, target, progress)
    if isinstance(target, AppriseTarget):
        from digests.deliver.apprise import notify

        return notify(digest, target, progress)
    raise DeliveryError(
        f"the {target.kind} target is not available in this version", permanent=True
    )
