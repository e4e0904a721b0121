"""The Apprise target: the long tail of channels (ntfy, Teams, Matrix, Pushover, Mattermost...)
through the `apprise` library, which knows each service's API and splits over-long bodies.

Each URL is one part of the delivery, notified on its own, so a retry after one service
failed does not notify the others again. Apprise reports failures through its log, which
is captured for the recorded reason; an URL Apprise does not understand is permanent.
"""

from __future__ import annotations

import logging

import apprise

from core.config import AppriseTarget
from core.digest import Digest
from digests import render
from digests.deliver import DeliveryError, Progress


def body(digest: Digest, markdown: bool) -> str:
    """The digest as Markdown or text; "@" gets a zero-width space so "@room", "@channel"
    or "@here" from a feed pings nobody on Matrix, Mattermost or Teams."""
    text = render.markdown(digest) if markdown else render.text(digest)
    return text.replace("@", "@\u200b")


def notify(digest: Digest, target: AppriseTarget, progress: Progress) -> str:
    markdown = target.format == "markdown"
    text = body(digest, markdown)
    kind = apprise.NotifyFormat.MARKDOWN if markdown else apprise.NotifyFormat.TEXT
    total = len(target.urls)
    for index in range(progress.done, total):
        where = f"URL {index + 1} of {total}"
        sender = apprise.Apprise()
        if not sender.add(target.urls[index]):
            raise DeliveryError(f"Apprise does not understand {where}", permanent=True)
        for service in sender:
            # Apprise's own default is 4 s each; the target's timeout applies instead.
            service.socket_connect_timeout = min(target.timeout, 10.0)
            service.socket_read_timeout = target.timeout
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            sent = sender.notify(body=text, title=render.title(digest), body_format=kind)
        if not sent:
            lines = [line for line in captured.getvalue().splitlines() if line.strip()]
            reason = lines[-1].strip()[:300] if lines else "no reason given"
            raise DeliveryError(f"Apprise could not notify {where}: {reason}")
        progress.part_sent(index + 1)
    return f"{total} Apprise notification{'s' if total > 1 else ''} ({target.label})"
