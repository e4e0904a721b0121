"""What a developing story adds since a digest reported it (pure): new outlets, and new facts,
the sentences and names in the new items that the reported items did not carry."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence, Set
from functools import cache

import wordfreq

from core.digest import WhatChanged
from core.history import Reported
from core.items import StoredItem
from digests.similarity import words

# Sentence ends: a full stop, question or exclamation mark before a space and a capital.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'‘“])")
# A capitalised run of words: "European Commission", "CloudNimbus", "AI Act".
_NAME = re.compile(r"\b[A-Z][\w'&-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'&-]*)*")
MIN_WORDS, MAX_WORDS = 6, 45  # a sentence shorter says little, a longer one is a paragraph
# A sentence sharing at most this much of its words with every reported one is new.
NEW_OVERLAP = 0.5
MAX_FACTS = 3
MAX_NAMES = 5
# A sentence-initial capitalised word this common is just the start of a sentence.
_EVERYDAY_ZIPF = 4.0


def sentences(text: str) -> list[str]:
    found = []
    for part in _SENTENCE_END.split(" ".join(text.split())):
        count = len(part.split())
        if MIN_WORDS <= count <= MAX_WORDS:
            found.append(part.strip())
    return found


@cache
def _everyday(word: str) -> bool:
    return wordfreq.zipf_frequency(word.lower(), "en") >= _EVERYDAY_ZIPF


def names(text: str) -> set[str]:
    """Capitalised names, leaving out a lone common word that only starts a sentence."""
    found = set()
    for match in _NAME.finditer(text):
        name = match.group(0)
        if " " not in name and _everyday(name):
            continue
        found.add(name)
    return found


def _overlap(a: Set[str], b: Set[str]) -> float:
    return len(a & b) / len(a) if a else 1.0


def new_facts(new: Iterable[str], reported: Iterable[str]) -> list[str]:
    """Sentences of `new` texts that no reported sentence (nor an earlier new one) covers."""
    known = [words(sentence) for text in reported for sentence in sentences(text)]
    found = []
    for text in new:
        for sentence in sentences(text):
            vocabulary = words(sentence)
            if all(_overlap(vocabulary, seen) <= NEW_OVERLAP for seen in known):
                found.append(sentence)
                known.append(vocabulary)
    return found


def _text(item: StoredItem) -> str:
    return f"{item.title}. {item.text}"


def what_changed(new: Sequence[StoredItem], reported: Reported) -> WhatChanged:
    told_sources = {name for item in reported.items for name in item.sources}
    told_text = " ".join(_text(item) for item in reported.items)
    told_names = {name.casefold() for name in names(told_text)}
    fresh = [item for item in new if item.id not in {told.id for told in reported.items}]
    outlets = sorted({name for item in fresh for name in item.sources} - told_sources)
    new_names: list[str] = []
    for item in fresh:
        for name in sorted(names(_text(item))):
            if name.casefold() not in told_names and name not in new_names:
                new_names.append(name)
    facts = new_facts([item.text for item in fresh], [_text(item) for item in reported.items])
    return WhatChanged(
        since=reported.at,
        new_outlets=tuple(outlets),
        new_facts=tuple(facts[:MAX_FACTS]),
        new_entities=tuple(new_names[:MAX_NAMES]),
    )


def reported_lines(reported: Reported) -> str:
    """What was reported, as the model reads it in the dump: the cited titles."""
    titles = list(dict.fromkeys(" ".join(item.title.split()) for item in reported.items))
    return f"{reported.at:%Y-%m-%d %H:%M} UTC: " + "; ".join(titles[:5])
