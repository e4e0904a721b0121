"""Validate: turn the model's answer into trends backed only by what the dump held.

Evidence ids not in the dump are dropped, and so are trends left without evidence. Links
come from the store through the evidence ids, never from the model: a URL in the model's
text is removed, and a bare domain is defanged so no mail client turns it into a link.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.digest import DigestItem
from core.items import StoredItem
from core.urls import is_web_url
from digests.ask import ModelTrend
from digests.pack import Pack, PackedStory

ITEMS_PER_TREND = 6

# Web addresses, and the script and data URIs a prompt injection may ask for.
_URL = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.|mailto:|(?:javascript|vbscript):(?=\S)"
    r"|data:[a-z]+/[\w.+-]+[;,])\S*"
)
_EMAIL = re.compile(r"(?i)\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_DOMAIN = re.compile(
    r"(?i)\b((?:[a-z0-9-]+\.)+)(com|net|org|io|co|info|biz|xyz|ru|cn|me|ly|app|dev|ai|site|"
    r"online|top|click|link|ws|cc|tk|gg|to|sh|us|uk|de|fr)\b(/\S*)?"
)


@dataclass(frozen=True)
class GroundedTrend:
    title: str
    summary: str
    why_it_matters: str
    status: str
    score: float
    stories: tuple[PackedStory, ...]  # the stories its evidence names, in citation order
    items: tuple[StoredItem, ...]  # the items to link, from the store


@dataclass(frozen=True)
class Links:
    """A trend's links: the few to list, and how many more (from which outlets) there are."""

    items: tuple[DigestItem, ...]
    more_items: int = 0
    more_outlets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Validated:
    trends: tuple[GroundedTrend, ...]
    dropped_ids: int  # evidence ids the dump did not hold
    dropped_trends: int  # trends left without evidence


def unlink(text: str) -> str:
    """Text without URLs and e-mail addresses, which mail clients and Slack turn into links."""
    text = _URL.sub("[link removed]", text)
    return " ".join(_EMAIL.sub("[address removed]", text).split())


def scrub(text: str) -> str:
    """Analyzer text without links: URLs and e-mail addresses removed, bare domains defanged.

    For what the model or the offline analyzer writes; a headline keeps its domains
    (`unlink`), so "Amazon.com reports earnings" still reads as written.
    """
    return _DOMAIN.sub(lambda m: f"{m[1][:-1]}[.]{m[2]}", unlink(text))


def _refs(packs: Sequence[Pack]) -> dict[str, tuple[PackedStory, StoredItem | None]]:
    found: dict[str, tuple[PackedStory, StoredItem | None]] = {}
    for chunk in packs:
        for packed in chunk.stories:
            found[packed.ref] = (packed, None)
            for ref, item in packed.items:
                found[ref] = (packed, item)
    return found


def _normalise(ref: str) -> str:
    return ref.strip().strip("[]()").strip().upper()


def validate(trends: Sequence[ModelTrend], packs: Sequence[Pack], max_trends: int) -> Validated:
    refs = _refs(packs)
    grounded: list[GroundedTrend] = []
    dropped_ids = dropped_trends = 0
    for trend in trends:
        stories: dict[str, PackedStory] = {}
        named: list[StoredItem] = []
        for raw in trend.evidence:
            target = refs.get(_normalise(raw))
            if target is None:
                dropped_ids += 1
                continue
            packed, item = target
            stories.setdefault(packed.ref, packed)
            if item is not None:
                named.append(item)
        if not stories:
            dropped_trends += 1
            continue
        reported = any(packed.story.reported for packed in stories.values())
        grounded.append(
            GroundedTrend(
                title=scrub(trend.title)
                or scrub(next(iter(stories.values())).story.window.items[0].title),
                summary=scrub(trend.summary),
                why_it_matters=scrub(trend.why_it_matters),
                status="developing" if reported else trend.status,
                score=round(min(max(trend.score, 0.0), 100.0), 2),
                stories=tuple(stories.values()),
                items=tuple(named),
            )
        )
    # Python's sort is stable: equal scores keep the model's order.
    grounded.sort(key=lambda trend: -trend.score)
    return Validated(tuple(grounded[:max_trends]), dropped_ids, dropped_trends)


def links(trend: GroundedTrend) -> Links:
    """The items the model named first, then the rest of its stories' items."""
    named = list(trend.items)
    for packed in trend.stories:
        named += packed.story.window.items
    return digest_items(named)


def digest_items(items: Sequence[StoredItem]) -> Links:
    """Links from the store: one item per source first, so they show the breadth of coverage;
    ITEMS_PER_TREND of them, and the count of the rest with their outlets."""
    by_source: dict[str, DigestItem] = {}
    rest: list[DigestItem] = []
    seen: set[str] = set()
    for item in items:
        if item.id in seen or not is_web_url(item.url):
            continue
        seen.add(item.id)
        entry = DigestItem(
            title=unlink(item.title),
            url=item.url,
            source=item.sources[0] if item.sources else "",
            published=item.published,
        )
        if entry.source not in by_source:
            by_source[entry.source] = entry
        else:
            rest.append(entry)
    ordered = [*by_source.values(), *rest]
    unlisted = ordered[ITEMS_PER_TREND:]
    return Links(
        tuple(ordered[:ITEMS_PER_TREND]),
        len(unlisted),
        tuple(dict.fromkeys(entry.source for entry in unlisted)),
    )
