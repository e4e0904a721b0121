"""Pack: the stories as the model reads them, best first, inside a token budget.

Each story becomes one delimited block: its signals, one representative text (trimmed by
tokens) and the other sources' titles. Stories and items get short ids (``S3``, ``S3.2``)
that the model cites as evidence; links never enter the dump, so the model has none to copy.
Feed text is untrusted: the characters that could close or open a block are neutralised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from core.items import StoredItem
from digests.signals import ScoredStory
from digests.tokens import TokenCounter


@dataclass(frozen=True)
class PackSettings:
    # The best-ranked stories get room for detail; the rest a lead and a few titles, so a
    # busy day's dump carries breadth instead of stopping after the first hundred stories.
    detailed_stories: int = 25
    text_tokens: int = 300  # the representative item's text, in a detailed story
    max_titles: int = 10  # other items listed by title; the rest are counted by source
    brief_text_tokens: int = 50
    brief_max_titles: int = 2
    title_tokens: int = 40  # each title
    max_chunks: int = 6  # when splitting, at most this many requests before the merge

    def brief(self) -> PackSettings:
        return replace(self, text_tokens=self.brief_text_tokens, max_titles=self.brief_max_titles)


@dataclass(frozen=True)
class PackedStory:
    ref: str  # "S3"
    story: ScoredStory
    items: tuple[tuple[str, StoredItem], ...]  # ("S3.1", item), the items shown
    block: str
    tokens: int


@dataclass(frozen=True)
class Pack:
    stories: tuple[PackedStory, ...]
    left_out: tuple[ScoredStory, ...]  # did not fit, best first
    tokens: int

    @property
    def dump(self) -> str:
        return "\n\n".join(packed.block for packed in self.stories)


def inert(text: str) -> str:
    """Feed text that cannot close or open a block of the dump."""
    return " ".join(text.replace("<", "‹").replace(">", "›").split())


def render_story(
    ref: str,
    story: ScoredStory,
    counter: TokenCounter,
    settings: PackSettings,
    reported: str = "",
) -> PackedStory:
    """One story's block; `reported` is what an earlier digest said of it, if it did."""
    window = story.window
    lead, others = window.items[0], window.items[1:]
    shown = others[: settings.max_titles]
    rest = others[settings.max_titles :]
    attributes = (
        f'id="{ref}" sources="{story.sources}" items="{story.items}" status="{story.status}"'
    )
    if story.reported:
        attributes += f' new_sources_since_reported="{story.new_sources}"'
    lines = [f"<story {attributes}>"]
    if reported:
        # The model is asked for what changed since, so it needs what was said.
        lines.append(f"Reported before, {counter.trim(inert(reported), settings.text_tokens)}")
    lines.append(_item_line(f"{ref}.1", lead, counter, settings))
    if text := counter.trim(inert(lead.text), settings.text_tokens):
        lines.append(text)
    if shown:
        lines.append("Also reported:")
        lines += [
            _item_line(f"{ref}.{number}", item, counter, settings)
            for number, item in enumerate(shown, start=2)
        ]
    if rest:
        names = sorted({name for item in rest for name in item.sources})
        listed = ", ".join(inert(name) for name in names[:8])
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        lines.append(f"...and {len(rest)} more items from {listed}{more}")
    lines.append("</story>")
    block = "\n".join(lines)
    items = ((f"{ref}.1", lead), *((f"{ref}.{n}", item) for n, item in enumerate(shown, start=2)))
    return PackedStory(ref, story, items, block, counter.count(block) + 1)


def _item_line(ref: str, item: StoredItem, counter: TokenCounter, settings: PackSettings) -> str:
    source = inert(item.sources[0] if item.sources else "unknown")
    title = counter.trim(inert(item.title), settings.title_tokens)
    return f"[{ref}] {source}, {item.published:%Y-%m-%d %H:%M}: {title}"


def pack(
    stories: Sequence[ScoredStory],
    counter: TokenCounter,
    budget: int,
    settings: PackSettings = PackSettings(),
    first_ref: int = 1,
    reported: Mapping[str, str] | None = None,
) -> Pack:
    """The best stories that fit in `budget` tokens; the tail that does not is left out.

    Stops at the first story that does not fit, so the dump is a prefix of the ranking and
    the work is proportional to what fits, not to everything selected.
    """
    packed: list[PackedStory] = []
    used = 0
    brief = settings.brief()
    for number, story in enumerate(stories):
        rank = first_ref + number
        shape = settings if rank <= settings.detailed_stories else brief
        told = (reported or {}).get(story.window.story_id, "")
        candidate = render_story(f"S{rank}", story, counter, shape, told)
        if used + candidate.tokens > budget:
            break
        packed.append(candidate)
        used += candidate.tokens
    return Pack(tuple(packed), tuple(stories[len(packed) :]), used)


def split(
    stories: Sequence[ScoredStory],
    counter: TokenCounter,
    budget: int,
    settings: PackSettings = PackSettings(),
    reported: Mapping[str, str] | None = None,
) -> list[Pack]:
    """Consecutive packs covering the stories, ids unique across them, at most max_chunks.

    The last pack's `left_out` holds whatever did not fit in any of them.
    """
    chunks: list[Pack] = []
    remaining = list(stories)
    first = 1
    while remaining and len(chunks) < settings.max_chunks:
        chunk = pack(remaining, counter, budget, settings, first_ref=first, reported=reported)
        if not chunk.stories:
            break
        chunks.append(chunk)
        first += len(chunk.stories)
        remaining = list(chunk.left_out)
    return chunks
