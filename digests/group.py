"""Story grouping: items about the same story, across sources, become one story.

Placeholder until the measured grouping lands: titles sharing most of their words.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "with",
        "as",
        "at",
        "by",
        "from",
        "is",
        "are",
        "was",
        "be",
        "it",
        "its",
    ]
)


@dataclass(frozen=True)
class GroupInput:
    item_id: str
    title: str
    text: str
    source: str
    published: datetime


@dataclass(frozen=True)
class GroupingSettings:
    threshold: float = 0.5


def _words(title: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(title.lower()) if w not in _STOP)


def assign_stories(
    new: Sequence[GroupInput],
    anchors: Sequence[tuple[GroupInput, str]] = (),
    *,
    settings: GroupingSettings = GroupingSettings(),
) -> dict[str, str]:
    members: list[tuple[frozenset[str], str | None, str]] = [
        (_words(item.title), story, item.item_id) for item, story in anchors
    ]
    parent = list(range(len(members) + len(new)))
    members += [(_words(item.title), None, item.item_id) for item in new]

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(anchors), len(members)):
        for j in range(i):
            a, b = members[i][0], members[j][0]
            if a and b and len(a & b) / len(a | b) >= settings.threshold:
                parent[find(i)] = find(j)
    result: dict[str, str] = {}
    for i in range(len(anchors), len(members)):
        root = find(i)
        cluster = [k for k in range(len(members)) if find(k) == root]
        story = next((members[k][1] for k in cluster if members[k][1]), None)
        if story is None:
            smallest = min(members[k][2] for k in cluster)
            story = "st_" + hashlib.sha256(smallest.encode()).hexdigest()[:16]
        result[members[i][2]] = story
    return result
