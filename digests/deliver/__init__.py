"""Delivery targets: each sends one stored digest somewhere, or raises DeliveryError."""

from __future__ import annotations

from daemon.config import FileTarget, Target
from digests.model import Digest


class DeliveryError(Exception):
    """A delivery attempt failed; the message is what the operator sees in `status`."""


def send(digest: Digest, target: Target) -> str:
    """Deliver `digest` to `target` and return where it went (for the log)."""
    if isinstance(target, FileTarget):
        from digests.deliver.files import write_digest

        return write_digest(digest, target)
    raise DeliveryError(f"the {target.kind} target is not available in this version")
