"""Rows to values: one mapper for every frozen dataclass the store returns."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from core.clock import from_text

# Bound only so that mypy lets a class (always hashable) key functools.cache.
T = TypeVar("T", bound=Hashable)


@functools.cache
def _times(cls: type) -> frozenset[str]:
    """The fields of `cls` that hold a datetime (stored as fixed-width ISO text)."""
    hints = typing.get_type_hints(cls)
    return frozenset(
        name
        for name, hint in hints.items()
        if hint is datetime or datetime in typing.get_args(hint)
    )


def from_row(cls: type[T], row: Mapping[str, Any]) -> T:
    """`cls` from a row whose columns carry its fields' names; times parsed from text."""
    times = _times(cls)
    values = {
        field.name: _time(row[field.name]) if field.name in times else row[field.name]
        for field in dataclasses.fields(cls)  # type: ignore[arg-type]
        if field.name in row
    }
    return cls(**values)


def _time(value: str | None) -> datetime | None:
    return from_text(value) if value else None
