"""Synthetic news days of any size, built from the labelled UCI headlines.

Each synthetic story is a copy of a real UCI story whose story-specific words (those used by at
most two UCI stories) are renamed to invented words, so copies are distinct stories that still
share the real headlines' structure and common vocabulary ("stocks", "recall", "season") with
everything else. Headlines are sampled from the real story and perturbed (a word dropped, two
words swapped). Story sizes are heavy-tailed, as in a real feed day, and a share of small filler
stories made of invented words and common words adds sparse, unrelated noise.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import replace

from bench.uci import LabelledItem

_CORE = re.compile(r"[^\W_]+")
_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
# Words used by this many UCI stories are common vocabulary; rarer ones are renamed per copy.
_SHARED_BY = 6


def _invented_word(rng: random.Random) -> str:
    # Three or more syllables: enough distinct words that chance collisions stay rare at 50k items.
    syllables = rng.randint(3, 4)
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))


def _core(word: str) -> str:
    found = _CORE.search(word.lower())
    return found.group(0) if found else ""


def synthetic_day(
    real: list[LabelledItem], count: int, *, seed: int = 0, filler_share: float = 0.15
) -> list[LabelledItem]:
    """`count` labelled items; the same arguments always give the same items."""
    rng = random.Random(seed)
    headlines_by_story: dict[str, list[LabelledItem]] = defaultdict(list)
    stories_using: dict[str, set[str]] = defaultdict(set)
    for labelled in real:
        headlines_by_story[labelled.story].append(labelled)
        for word in labelled.item.title.split():
            stories_using[_core(word)].add(labelled.story)
    story_names = sorted(headlines_by_story)
    common_words = sorted(w for w, used in stories_using.items() if len(used) >= _SHARED_BY and w)

    out: list[LabelledItem] = []

    def emit(title: str, template: LabelledItem, story: str) -> None:
        item = replace(template.item, item_id=f"syn{len(out):07d}", title=title)
        out.append(LabelledItem(item, story))

    copy_number = 0
    while len(out) < count:
        if rng.random() < filler_share:
            story = f"filler{copy_number}"
            own_words = [_invented_word(rng) for _ in range(rng.randint(2, 4))]
            template = rng.choice(real)
            for _ in range(min(rng.randint(1, 3), count - len(out))):
                words = rng.sample(own_words, rng.randint(1, len(own_words)))
                words += rng.sample(common_words, rng.randint(2, 5))
                rng.shuffle(words)
                emit(" ".join(words), template, story)
        else:
            source_story = rng.choice(story_names)
            story = f"{source_story}#{copy_number}"
            renames: dict[str, str] = {}
            pool = headlines_by_story[source_story]
            # Heavy tail: most stories are small, a few are as big as the real ones.
            size = min(count - len(out), max(1, int(rng.paretovariate(0.9))), 3 * len(pool))
            for _ in range(size):
                template = rng.choice(pool)
                words = []
                for word in template.item.title.split():
                    core = _core(word)
                    if core and len(stories_using[core]) < _SHARED_BY:
                        word = renames.setdefault(core, _invented_word(rng))
                    words.append(word)
                if len(words) > 3 and rng.random() < 0.3:
                    del words[rng.randrange(len(words))]
                if len(words) > 3 and rng.random() < 0.2:
                    at = rng.randrange(len(words) - 1)
                    words[at], words[at + 1] = words[at + 1], words[at]
                emit(" ".join(words), template, story)
        copy_number += 1
    return out


# Furniture that a source prints around every article, whatever the story.
_SOURCE_FURNITURE = (
    "Sign up for the {source} newsletter and get breaking alerts delivered to your inbox.",
    "Advertisement. Continue reading the main story from {source} below.",
    "Follow {source} on Twitter, Facebook and Instagram for the latest updates.",
    "{source} staff writers. Published in print and online. Comments are moderated.",
)
# Syndication boilerplate that many sources carry on many stories.
_WIRE_NOTICE = (
    "Copyright Thomson Reuters. All rights reserved. Republication or redistribution of this "
    "content is expressly prohibited without prior written consent."
)
_WIRE_FOOTER = (
    "Copyright 2014 The Associated Press. All rights reserved. This material may not be "
    "published, broadcast, rewritten or redistributed."
)


def with_texts(
    labelled: list[LabelledItem],
    *,
    seed: int = 0,
    words: tuple[int, int] = (150, 200),
    boilerplate: bool = True,
) -> list[LabelledItem]:
    """The same items with article texts of `words` words, as a feed's full text would read.

    A text mixes the story's own vocabulary (words of its headlines) with common English
    (sampled by frequency from `wordfreq`), and carries boilerplate that says nothing about
    the story: half the sources open every text with their own furniture line, and a fifth of
    all items, across sources and stories, open with a wire service's legal notice and end with
    another's footer. A story's texts are drawn independently, so they share its words but
    never a sentence.
    """
    import wordfreq

    rng = random.Random(seed)
    english = wordfreq.top_n_list("en", 5000)
    weights = [wordfreq.word_frequency(word, "en") for word in english]
    story_words: dict[str, list[str]] = defaultdict(list)
    for entry in labelled:
        story_words[entry.story] += entry.item.title.split()
    sources = sorted({entry.item.source for entry in labelled})
    furniture = {
        source: rng.choice(_SOURCE_FURNITURE).format(source=source)
        for source in sources
        if boilerplate and rng.random() < 0.5
    }
    out = []
    for entry in labelled:
        length = rng.randint(*words)
        own = story_words[entry.story]
        body = [
            rng.choice(own) if rng.random() < 0.2 else word
            for word in rng.choices(english, weights, k=length)
        ]
        parts = [furniture.get(entry.item.source, "")]
        wire = boilerplate and rng.random() < 0.2
        if wire:
            parts.append(_WIRE_NOTICE)
        parts.append(" ".join(body).capitalize() + ".")
        if wire:
            parts.append(_WIRE_FOOTER)
        text = " ".join(part for part in parts if part)
        out.append(LabelledItem(replace(entry.item, text=text), entry.story))
    return out
