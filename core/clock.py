"""Time in one place: the store keeps fixed-width ISO-8601 UTC text, so strings sort as times."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_LENGTH = len("2026-01-01T00:00:00.000000Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in trendfinder is timezone-aware")
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_text(text: str) -> datetime:
    # fromisoformat is C: 50 times faster than strptime, which cost a 50k-item selection
    # seconds (300,000 stored times); the length check keeps the stored format strict.
    if len(text) != _LENGTH or text[10] != "T" or not text.endswith("Z"):
        raise ValueError(f"not a stored UTC time: {text!r}")
    return datetime.fromisoformat(text)
