"""Story grouping: decide which news items are about the same story.

Pure functions, no I/O beyond reading the English word frequencies that ship with `wordfreq`
and the 16 MB meaning model that ships inside the `wordllama` wheel (loaded offline).
Items become TF-IDF vectors over their title words plus a few distinctive words of their
text: each text word counts once, only the rarest 30 that another item shares and that few
items contain, and never a line that most of one source's items carry (a wire footer, a
byline). Long texts thus add evidence without making every item look like every other. The IDF
blends the batch's document frequencies with general English ones, so weights do not hinge on
the batch size: a collection run often brings only a few dozen items. Beside the words, each
title gets a 256-dimensional meaning vector (wordllama), which tells paraphrases apart from
headlines that merely share a word; the cosine of two items is a weighted sum of both. Two
passes then build the groups:

1. Near-duplicates (wire copies, identical or near-identical titles or text) are joined outright.
2. Groups are merged agglomeratively by the cosine between their summed vectors (centroid
   cosine), so a candidate is always compared with a story as a whole, never with whichever
   member it happens to resemble. A pair of single items must clear a strict bar, and the
   bar falls towards ``merge_similarity`` as the larger group grows, because a big group's
   centroid is a much steadier signal than one headline. Below the strict bar a merge also
   needs specific evidence at both groups' cores: words that most members of each have and
   that are rare in general English (names, places, rare words), not one topic word such as
   "gas", "best" or "review". This is what lets a 200-headline story with drifting
   vocabulary come together while a topic bucket breaks into its stories and a headline
   bridging two stories does not chain them together.

Candidate pairs come from a sparse matrix product computed in row blocks of bounded size, and
each item or group keeps its 100 most similar others, so a story of thousands of near-identical
items costs thousands of pairs rather than millions. The merge pass runs in rounds; each round
recomputes the group vectors exactly, so a similarity dropped below the candidate floor in one
round is seen again in the next.

The daemon groups incrementally: each run brings new items plus the last days' items with their
story ids (anchors). Both are grouped afresh, as if they had arrived at once, and the groups are
then reconciled with the existing stories (`_reconcile`), which may merge, and split when
their anchors stop cohering (often a merge made on thin early evidence): the part with most
members keeps the id. Cross-validated by story on the UCI dev headlines, see the README.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import html
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp
import wordfreq
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from digests.grouping import Assignment, GroupingSettings, GroupInput
from digests.meaning import embed


def assign_stories(
    new: Sequence[GroupInput],
    anchors: Sequence[tuple[GroupInput, str]] = (),
    *,
    settings: GroupingSettings = GroupingSettings(),
) -> Assignment:
    """Group new items, joining them to the anchors' stories where they belong.

    `anchors` are recently grouped items with their story ids. New items and anchors are
    grouped together from scratch, as if they had all arrived at once, and the groups are then
    reconciled with the anchors' stories (see `_reconcile`): a story whose first items arrived
    in different collection runs comes together once the evidence is there, instead of staying
    split for good. New items that join no anchor story form new stories, whose ids are 'st_'
    plus a short hash of the smallest new member id. The result does not depend on the order
    of `new` or `anchors`.
    """
    new_ids = {item.item_id for item in new}
    # Sorting by id makes every later step, including float summation order, order-independent.
    entries: list[tuple[GroupInput, str | None]] = sorted(
        [(item, None) for item in {item.item_id: item for item in new}.values()]
        + [(item, story) for item, story in anchors if item.item_id not in new_ids],
        key=lambda entry: entry[0].item_id,
    )
    if not entries:
        return Assignment(stories={}, merged={})
    items = [item for item, _ in entries]
    stories = [story for _, story in entries]

    vectors, specificity, fingerprints = _item_vectors(items, settings)
    evidence = vectors.copy()
    evidence.data = (specificity[evidence.indices] > 0).astype(np.float64)
    evidence.eliminate_zeros()
    features = _Features(
        lexical=vectors,
        dense=_dense_vectors(items, settings),
        evidence=evidence,
        specificity=specificity,
    )
    labels = _near_duplicate_labels(items, vectors, fingerprints, settings)
    changed: NDArray[np.int64] | None = None
    for _ in range(settings.max_merge_rounds):
        merged = _merge_round(features, labels, settings, changed)
        if np.array_equal(merged, labels):
            break
        # A pair of groups that no merge touched was weighed last round on exactly the same
        # vectors and evidence and turned down; only pairs with a grown group can go now.
        changed = np.unique(merged[merged != labels])
        labels = merged
    return _reconcile(items, stories, labels.tolist(), settings)


def _reconcile(
    items: list[GroupInput],
    stories: list[str | None],
    labels: list[int],
    settings: GroupingSettings,
) -> Assignment:
    """Turn fresh groups over anchors and new items into story ids, merges and splits.

    Each anchor story's home is the group holding most of its anchors (ties: the group of its
    smallest anchor id), so the part with most members keeps the id. The stories at home in
    one group merge; the oldest survives (earliest published anchor, then the larger, then the
    smaller id), so a story a reader has already seen keeps its id. A group that is no
    story's home but holds at least `split_min_items` anchors of one story is split off as a
    new story. Other anchors in a group that is not their story's home move to the group's
    story when their part has at least `split_min_items` anchors; smaller parts stay put, so
    one stray headline does not make stories flicker. New items take the group's story;
    failing that, the story with the most anchors in the group; failing that, a new story.
    """
    sizes: Counter[str] = Counter()
    first_published: dict[str, datetime] = {}
    for item, story in zip(items, stories, strict=True):
        if story is not None:
            sizes[story] += 1
            first_published[story] = min(first_published.get(story, item.published), item.published)

    def seniority(story: str) -> tuple[datetime, int, str]:
        return first_published[story], -sizes[story], story

    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    parts = {
        label: Counter(story for story in (stories[i] for i in group) if story is not None)
        for label, group in members.items()
    }
    # Labels are each group's smallest index and items are sorted by id, so among groups
    # holding equally many of a story's anchors the one with its smallest anchor id wins.
    home: dict[str, int] = {}
    for label in sorted(parts):
        for story, count in parts[label].items():
            if story not in home or count > parts[home[story]][story]:
                home[story] = label

    merged: dict[str, str] = {}
    group_story: dict[int, str] = {}
    for label, group in members.items():
        counts = parts[label]
        homes = [story for story in counts if home[story] == label]
        if homes:
            survivor = min(homes, key=seniority)
            group_story[label] = survivor
            merged.update((story, survivor) for story in homes if story != survivor)
        elif max(counts.values(), default=0) >= settings.split_min_items:
            anchor_ids = [items[i].item_id for i in group if stories[i] is not None]
            group_story[label] = _new_story_id("split:" + min(anchor_ids), settings)
        elif counts:
            group_story[label] = min(counts, key=lambda story: (-counts[story], seniority(story)))

    assigned: dict[str, str] = {}
    moved: dict[str, str] = {}
    for label, group in members.items():
        target = group_story.get(label)
        new_members = [items[i].item_id for i in group if stories[i] is None]
        story_id = target or (_new_story_id(min(new_members), settings) if new_members else "")
        for index in group:
            story = stories[index]
            item_id = items[index].item_id
            if story is None:
                assigned[item_id] = merged.get(story_id, story_id)
            elif (
                target is not None
                and merged.get(story, story) != merged.get(target, target)
                and parts[label][story] >= settings.split_min_items
            ):
                moved[item_id] = merged.get(target, target)
    return Assignment(stories=assigned, merged=merged, moved=moved)


def _new_story_id(smallest_member_id: str, settings: GroupingSettings) -> str:
    digest = hashlib.sha1(smallest_member_id.encode(), usedforsecurity=False).hexdigest()
    return settings.story_id_prefix + digest[:12]


# --- text to terms -------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_TRAILING_ELLIPSIS = re.compile(r"(?:\s*(?:\.\.\.|…))+\s*$")
# Function words plus headline boilerplate that says nothing about which story it is.
_STOPWORDS_TEXT = """
a about above after again against all am an and any are as at be because been before
being below between both but by can cannot could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in into is
it its itself let me more most my myself no nor not of off on once only or other ought our
ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why with would you your yours yourself yourselves
says said say new will just now via get gets got one two video watch update updated report
reports news live photo photos us
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def _fold(text: str) -> str:
    """Unescape HTML entities and drop accents, so 'Beyonc&#233;' and 'Beyonce' agree."""
    if "&" in text:
        text = html.unescape(text)
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _stem(word: str) -> str:
    """Light stemming, possessives and plurals only: "Snowden's" -> "snowden", "banks" -> "bank"."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    word = word.replace("'", "").replace("’", "")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _term(word: str) -> str:
    """The term a folded word counts as, or "" for a stopword."""
    # Checked before and after stemming: "does" is a stopword, its stem "doe" is not.
    if word in _STOPWORDS:
        return ""
    stem = _stem(word)
    return "" if stem in _STOPWORDS else stem


class _Terms(dict[str, str]):
    """`_term` of every word met, looked up at C speed by `map` (a cache call per word of
    millions of text words costs more than the tokenising)."""

    def __missing__(self, word: str) -> str:
        term = self[word] = _term(word)
        return term


_TERMS = _Terms()
_TERMS_KEPT = 1 << 18


def _without_ellipsis(text: str) -> str:
    # The pattern is tried at every run of spaces; few texts end in an ellipsis at all.
    return _TRAILING_ELLIPSIS.sub("", text) if text.rstrip().endswith(("...", "…")) else text


def _tokens(text: str) -> list[str]:
    return _WORD.findall(_without_ellipsis(_fold(text)))


def _words(text: str, ignored: frozenset[str]) -> list[str]:
    return [term for term in map(_TERMS.__getitem__, _tokens(text)) if term and term not in ignored]


def _distinct_words(text: str, ignored: frozenset[str]) -> tuple[str, ...]:
    """`_words` without repeats, each word worked out once."""
    terms = dict.fromkeys(filter(None, map(_TERMS.__getitem__, dict.fromkeys(_tokens(text)))))
    return tuple(term for term in terms if term not in ignored) if ignored else tuple(terms)


# Each run regroups its anchors, so most items recur from run to run.
@functools.lru_cache(maxsize=1 << 15)
def _item_words(title: str, text: str, source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ignored = _source_words(source)
    # The text's distinct words as a tuple: a fifth of a frozenset's memory in the cache.
    return tuple(_words(title, ignored)), _distinct_words(text, ignored)


@functools.lru_cache(maxsize=4096)
def _source_words(source: str) -> frozenset[str]:
    # Headlines often carry the outlet's name ("... | Huffingtonpost"); it is not the story.
    return frozenset(_stem(word) for word in _WORD.findall(_fold(source)))


def _item_vectors(
    items: list[GroupInput], settings: GroupingSettings
) -> tuple[sp.csr_matrix, NDArray[np.float64], sp.csr_matrix]:
    """One L2-normalised TF-IDF row per item over its title words and a few of its text words,
    the specificity of each column's word, and each item's text fingerprint: a unit row over
    its rarest text words (none when it has fewer than `text_fingerprint_terms`).

    Title words count with sublinear tf. Text words count once each, at `text_weight`: a word
    the text repeats thirty times is still one word of the story. Of the text words not in the
    title, only the `text_max_terms` rarest count, after the source's furniture is dropped.
    Document frequencies are taken over every word read, so a word that most texts share
    weighs little even when it is rare in English.

    Words become column numbers once; everything after is arrays of (item, column) entries,
    since at 50,000 items with texts there are millions of them.
    """
    count = len(items)
    if len(_TERMS) > _TERMS_KEPT:
        _TERMS.clear()
    words = [
        _item_words(item.title, item.text[: settings.text_max_chars], item.source) for item in items
    ]
    titles = [Counter(title) for title, _ in words]
    every_term = sorted(set().union(*(title for title, _ in words), *(text for _, text in words)))
    column = {term: index for index, term in enumerate(every_term)}
    width = len(every_term)

    title_row, title_column = _entries(count, column, titles)
    title_count = np.fromiter(
        (amount for title in titles for amount in title.values()), dtype=np.float64
    )
    text_row, text_column = _entries(count, column, (text for _, text in words))
    del words
    keep = ~_furniture(items, text_row, text_column, width, settings)
    text_row, text_column = text_row[keep], text_column[keep]

    title_key = title_row * width + title_column
    text_key = text_row * width + text_column
    # Document frequencies over every word read; the columns no item kept are dropped.
    document_frequency_all = np.bincount(
        _distinct(np.concatenate([title_key, text_key]))[0] % width, minlength=width
    )
    used = document_frequency_all > 0
    renumber = np.cumsum(used) - 1
    terms = [term for term, kept in zip(every_term, used.tolist(), strict=True) if kept]
    document_frequency = document_frequency_all[used]
    title_column, text_column = renumber[title_column], renumber[text_column]
    width = len(terms)
    title_key = title_row * width + title_column
    text_key = text_row * width + text_column

    idf = _idf(terms, document_frequency, count, settings)
    specificity = _specificity(terms, document_frequency, count, settings)

    # A title word the text repeats counts a little more; text words in the title count no more.
    title_weight = title_count + settings.text_weight * _member(title_key, text_key)
    in_title = _member(text_key, title_key)
    # Each item's rare text words, rarest first (ties by word).
    rare = idf[text_column] >= -math.log(settings.text_max_share)
    rare_row, rare_column, rare_in_title = text_row[rare], text_column[rare], in_title[rare]
    order = np.lexsort((rare_column, -idf[rare_column], rare_row))
    rare_row, rare_column, rare_in_title = rare_row[order], rare_column[order], rare_in_title[order]
    # Words no other item has stay in the fingerprint: two texts that share only their
    # boilerplate differ in them, two copies of one text do not.
    # The rarest words only: they meet few other rows, so the fingerprint product is cheap.
    fingerprinted = (_rank_within(rare_row) < 2 * settings.text_fingerprint_terms) & (
        np.bincount(rare_row, minlength=count)[rare_row] >= settings.text_fingerprint_terms
    )
    extra = ~rare_in_title & (document_frequency[rare_column] > 1)
    extra_row, extra_column = rare_row[extra], rare_column[extra]
    counted = _rank_within(extra_row) < settings.text_max_terms
    extra_row, extra_column = extra_row[counted], extra_column[counted]

    weights = np.concatenate(
        [1.0 + np.log(title_weight), np.full(len(extra_row), settings.text_weight)]
    )
    matrix = _sorted_csr(
        np.concatenate([title_row, extra_row]),
        np.concatenate([title_column, extra_column]),
        weights * (idf + 1.0)[np.concatenate([title_column, extra_column])],
        (count, width),
    )
    fingerprint_row, fingerprint_column = rare_row[fingerprinted], rare_column[fingerprinted]
    fingerprints = _sorted_csr(
        fingerprint_row, fingerprint_column, np.ones(len(fingerprint_row)), (count, width)
    )
    return _normalise_rows(matrix), specificity, _normalise_rows(fingerprints)


def _entries(
    count: int, column: dict[str, int], rows: Iterable[Iterable[str]]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The (row, column) of every word of every row, in order."""
    lengths = np.zeros(count, dtype=np.int64)
    columns: list[int] = []
    for index, row in enumerate(rows):
        before = len(columns)
        columns.extend(map(column.__getitem__, row))
        lengths[index] = len(columns) - before
    return np.repeat(np.arange(count, dtype=np.int64), lengths), np.array(columns, dtype=np.int64)


def _rank_within(rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Each entry's position among the entries of its row (`rows` sorted)."""
    ranks: NDArray[np.int64] = np.arange(len(rows)) - np.searchsorted(rows, rows)
    return ranks


# Sorting, not numpy's default hashing: several times faster on millions of int64 keys.
def _distinct(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct keys, ascending, and how often each occurs."""
    ordered = np.sort(keys)
    starts = np.flatnonzero(np.concatenate([[len(ordered) > 0], ordered[1:] != ordered[:-1]]))
    counts: NDArray[np.int64] = np.diff(np.append(starts, len(ordered)))
    return ordered[starts], counts


def _member(keys: NDArray[np.int64], among: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which keys occur in `among`."""
    ordered = np.sort(among)
    at = np.minimum(np.searchsorted(ordered, keys), max(len(ordered) - 1, 0))
    found: NDArray[np.bool_] = ordered[at] == keys if len(ordered) else np.zeros(len(keys), bool)
    return found


def _sorted_csr(
    rows: NDArray[np.int64],
    columns: NDArray[np.int64],
    data: NDArray[np.float64],
    shape: tuple[int, int],
) -> sp.csr_matrix:
    order = np.argsort(rows * shape[1] + columns, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
    return sp.csr_matrix(
        (data[order], columns[order].astype(np.int32), indptr.astype(np.int32)), shape=shape
    )


def _furniture(
    items: list[GroupInput],
    text_row: NDArray[np.int64],
    text_column: NDArray[np.int64],
    width: int,
    settings: GroupingSettings,
) -> NDArray[np.bool_]:
    """Which text words are their source's furniture: in more than half of that source's texts.

    A wire footer or a byline repeats in every item of its source, whatever the story, and
    in a small batch its words look rare in English, so the IDF alone does not discount it.
    """
    source_names = sorted({item.source for item in items})
    number = {name: index for index, name in enumerate(source_names)}
    source_of = np.fromiter((number[item.source] for item in items), dtype=np.int64)
    source_items = np.bincount(source_of, minlength=len(source_names))
    key = source_of[text_row] * width + text_column
    keys, members = _distinct(key)
    source = keys // width
    furniture = keys[
        (source_items[source] >= settings.furniture_min_items)
        & (2 * members > source_items[source])
    ]
    return _member(key, furniture)


def _idf(
    terms: list[str],
    document_frequency: NDArray[np.int64],
    documents: int,
    settings: GroupingSettings,
) -> NDArray[np.float64]:
    """Smoothed IDF whose document frequencies are the batch's own plus `background_documents`
    pseudo-documents drawn from general English, so a word every headline in a batch of four
    shares still counts as rare when it is rare in English ("outage"), and a common word stays
    cheap however few items mention it ("world").
    """
    prior = _english_prior(terms)
    pseudo = settings.background_documents
    result: NDArray[np.float64] = np.log(
        (1.0 + documents + pseudo) / (1.0 + document_frequency + pseudo * prior)
    )
    return result


# A news item (headline plus a line of text) holds about this many words, which turns a word's
# share of all English words into the share of items that contain it.
_WORDS_PER_ITEM = 20
# Words missing from the list are rarer than its floor of one in a million.
_UNSEEN_FRACTION = 1.0 - math.exp(-1e-6 * _WORDS_PER_ITEM)
_DIGIT = re.compile(r"\d")


def _english_prior(terms: list[str]) -> NDArray[np.float64]:
    """Each term's share of documents in general English (wordfreq), the batch's prior."""
    background = _background_document_fraction()
    return np.fromiter(
        (background.get(_background_key(term), _UNSEEN_FRACTION) for term in terms),
        dtype=np.float64,
        count=len(terms),
    )


@functools.cache
def _background_document_fraction() -> dict[str, float]:
    """Share of news items expected to contain each term, from general English frequencies.

    wordfreq's small English list (about 29k words, frequency >= 1e-6) ships with the package,
    so this needs no network. Surface forms are folded and stemmed exactly as item words are,
    and their frequencies summed: "bank" also counts "banks" and "bank's".
    """
    token_share: dict[str, float] = {}
    for word, frequency in wordfreq.get_frequency_dict("en", wordlist="small").items():
        for term in _words(word, frozenset()):
            token_share[term] = token_share.get(term, 0.0) + frequency
    return {term: 1.0 - math.exp(-share * _WORDS_PER_ITEM) for term, share in token_share.items()}


def _background_key(term: str) -> str:
    # wordfreq writes every digit as 0: "2014" is counted under "0000".
    return _DIGIT.sub("0", term)


# Specificity runs from 0 for a word in this share of news items or more (by general English
# frequencies: "best", "world") to 1 for one in this share or fewer (names, rare words).
_GENERIC_SHARE = 0.01
_SPECIFIC_SHARE = 0.0001
# The same in the batch: a word in a fifth of its items is no evidence, one in a tenth is.
_TOPIC_SHARE = 0.2
_STORY_SHARE = 0.1


def _specificity(
    terms: list[str],
    document_frequency: NDArray[np.int64],
    documents: int,
    settings: GroupingSettings,
) -> NDArray[np.float64]:
    """How much a shared word says that two items are the same story, 0 to 1: sharing "gas"
    or "tips" says little, sharing "Snowden" much. The lower of two readings: how rare the
    word is in general English, and how rare it is in this batch (its share blended with
    English as in the IDF, so a small batch is read mostly by English): a word that a fifth
    of a day's items carry is the day's topic or a feed's template, not one story."""
    prior = _english_prior(terms)
    pseudo = settings.background_documents
    batch = (document_frequency + pseudo * prior) / (documents + pseudo)
    result: NDArray[np.float64] = np.minimum(
        _rarity_scale(prior, _GENERIC_SHARE, _SPECIFIC_SHARE),
        _rarity_scale(batch, _TOPIC_SHARE, _STORY_SHARE),
    )
    return result


def _rarity_scale(
    share: NDArray[np.float64], generic: float, specific: float
) -> NDArray[np.float64]:
    """0 at `generic` share or more, 1 at `specific` or less, linear in the log between."""
    low, high = -math.log(generic), -math.log(specific)
    result: NDArray[np.float64] = np.clip((-np.log(share) - low) / (high - low), 0.0, 1.0)
    return result


def _dense_vectors(items: list[GroupInput], settings: GroupingSettings) -> NDArray[np.float32]:
    """Unit meaning vectors of the titles, or an empty matrix when they do not count."""
    if not settings.dense_weight or not items:
        return np.zeros((len(items), 0), dtype=np.float32)
    # Not cached across runs: the daemon groups in a child that exits after one run, and
    # ten thousand titles embed in about a second.
    return embed([_without_ellipsis(html.unescape(item.title)) or "-" for item in items])


def _normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = _row_norms(matrix)
    norms[norms == 0] = 1.0
    scaled: sp.csr_matrix = sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)
    return scaled


def _row_norms(matrix: sp.csr_matrix) -> NDArray[np.float64]:
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1), dtype=np.float64).ravel())


def _similar_pairs(
    unit_rows: sp.csr_matrix,
    floor: float,
    settings: GroupingSettings,
    rows: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Pairs i < j of L2-normalised rows with cosine >= floor, as (i, j, cosine) arrays;
    with `rows`, only the pairs that one of those rows takes part in.

    Each row keeps only its `max_neighbours` most similar rows (ties by index), and a pair
    stays when either of its rows keeps it (with `rows`, when that row keeps it). The product
    runs in row blocks sized so that no block can exceed `block_entries` entries: a block's
    rows can only meet the rows that share one of their terms.
    """
    count = unit_rows.shape[0]
    selected = np.arange(count, dtype=np.int64) if rows is None else rows
    probe, slack = _probe(unit_rows, floor)
    transposed = unit_rows.T.tocsr()
    presence = probe[selected]
    presence.data = np.ones_like(presence.data)
    rows_per_term = np.bincount(unit_rows.indices, minlength=unit_rows.shape[1])
    reach = np.minimum(presence @ rows_per_term, count)
    ends = np.cumsum(reach)
    firsts, seconds, cosines = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    start = 0
    while start < len(selected):
        budget = settings.block_entries + (ends[start - 1] if start else 0)
        stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
        block = (probe[selected[start:stop]] @ transposed).tocoo()
        rows_of = selected[start:stop][block.row]
        columns = block.col.astype(np.int64)
        # The probe's dot product plus the norm of the terms it left out bounds the cosine.
        keep = (columns != rows_of) & (block.data + slack[rows_of] >= floor)
        rows_of, columns, data = rows_of[keep], columns[keep], block.data[keep]
        if slack.any():
            data = _pair_dots(unit_rows, rows_of, columns)
            keep = data >= floor
            rows_of, columns, data = rows_of[keep], columns[keep], data[keep]
        order = np.lexsort((columns, -data, rows_of))
        rows_of, columns, data = rows_of[order], columns[order], data[order]
        rank = np.arange(len(rows_of)) - np.searchsorted(rows_of, rows_of)
        nearest = rank < settings.max_neighbours
        firsts.append(np.minimum(rows_of, columns)[nearest])
        seconds.append(np.maximum(rows_of, columns)[nearest])
        cosines.append(data[nearest])
        start = stop
    first, second, cosine = np.concatenate(firsts), np.concatenate(seconds), np.concatenate(cosines)
    _, unique = np.unique(first * count + second, return_index=True)
    return first[unique], second[unique], cosine[unique]


# Below this floor nearly every term can decide a cosine, so probing by the rarer terms would
# only add the exact recomputation.
_PROBE_FLOOR = 0.5
# The terms left out of a probe hold at most this share of the floor: any share below 1 finds
# every pair; a smaller one leaves fewer candidates to recompute for a larger product (three
# quarters cost a third of the full share's time on 20,000 synthetic items with texts).
_PROBE_SLACK = 0.75


def _probe(unit_rows: sp.csr_matrix, floor: float) -> tuple[sp.csr_matrix, NDArray[np.float64]]:
    """Each row cut to the terms that can decide whether a cosine reaches `floor`, and the norm
    of the rest (its slack).

    A row's commonest terms (those in most rows) whose squared weights sum to less than
    (`_PROBE_SLACK` * floor)**2 cannot reach the floor on their own (Cauchy-Schwarz), so a
    pair reaching it shares one of the remaining, rarer terms, whose short posting lists make
    the product cheap:
    prefix filtering of all-pairs similarity search (Bayardo et al., 2007).
    """
    if floor < _PROBE_FLOOR:
        return unit_rows, np.zeros(unit_rows.shape[0])
    row_of = np.repeat(np.arange(unit_rows.shape[0]), np.diff(unit_rows.indptr))
    rows_per_term = np.bincount(unit_rows.indices, minlength=unit_rows.shape[1])
    order = np.lexsort((unit_rows.indices, -rows_per_term[unit_rows.indices], row_of))
    squares = unit_rows.data[order] ** 2
    running = np.cumsum(squares)
    starts = unit_rows.indptr[:-1][row_of[order]]
    before_row = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0.0)
    within = running - before_row
    left_out = within < (_PROBE_SLACK * floor) ** 2
    slack = np.zeros(unit_rows.shape[0])
    np.maximum.at(slack, row_of[order][left_out], within[left_out])
    data = unit_rows.data.copy()
    data[order[left_out]] = 0.0
    probe = sp.csr_matrix(
        (data, unit_rows.indices.copy(), unit_rows.indptr.copy()), shape=unit_rows.shape
    )
    probe.eliminate_zeros()
    return probe, np.sqrt(slack)


def _pair_dots(
    matrix: sp.csr_matrix, firsts: NDArray[np.int64], seconds: NDArray[np.int64]
) -> NDArray[np.float64]:
    """matrix[firsts[k]] . matrix[seconds[k]] for every k, in chunks that bound the memory."""
    out = np.empty(len(firsts), dtype=np.float64)
    step = 65_536
    for start in range(0, len(firsts), step):
        stop = start + step
        product = matrix[firsts[start:stop]].multiply(matrix[seconds[start:stop]])
        out[start:stop] = np.asarray(product.sum(axis=1)).ravel()
    return out


# --- pass 1: near-duplicates ---------------------------------------------------------------


def _near_duplicate_labels(
    items: list[GroupInput],
    vectors: sp.csr_matrix,
    fingerprints: sp.csr_matrix,
    settings: GroupingSettings,
) -> NDArray[np.int64]:
    """Join items with the same title words, or near-identical vectors or text fingerprints
    (wire copies, whatever their headlines); each item is labelled with the smallest index in
    its group."""
    keyed_firsts: list[int] = []
    keyed_seconds: list[int] = []
    first_with_key: dict[str, int] = {}
    for index, item in enumerate(items):
        key = " ".join(_words(item.title, frozenset()))
        if key:
            keyed_firsts.append(first_with_key.setdefault(key, index))
            keyed_seconds.append(index)
    vector_pairs = _similar_pairs(vectors, settings.near_duplicate_similarity, settings)
    text_pairs = _similar_pairs(fingerprints, settings.near_duplicate_similarity, settings)
    firsts = np.concatenate([vector_pairs[0], text_pairs[0]])
    seconds = np.concatenate([vector_pairs[1], text_pairs[1]])
    count = len(items)
    edges = sp.csr_matrix(
        (
            np.ones(len(keyed_firsts) + len(firsts)),
            (np.concatenate([keyed_firsts, firsts]), np.concatenate([keyed_seconds, seconds])),
        ),
        shape=(count, count),
    )
    _, component = connected_components(edges, directed=False)
    smallest = np.full(component.max(initial=0) + 1, count, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(count, dtype=np.int64))
    labels: NDArray[np.int64] = smallest[component]
    return labels


# --- pass 2: centroid merging ----------------------------------------------------------------


@dataclass(frozen=True)
class _Features:
    """What the merge pass compares: unit TF-IDF rows, unit meaning rows (no columns when
    `dense_weight` is 0), which specific words each item has (1 where the lexical row has a
    word of positive specificity) and each word's specificity, 0 to 1 (see `_specificity`)."""

    lexical: sp.csr_matrix
    dense: NDArray[np.float32]
    evidence: sp.csr_matrix
    specificity: NDArray[np.float64]


def _merge_round(
    features: _Features,
    labels: NDArray[np.int64],
    settings: GroupingSettings,
    changed: NDArray[np.int64] | None = None,
) -> NDArray[np.int64]:
    """One round of agglomerative merging of the current groups; returns the new labels.
    With `changed` (labels of the groups the last round grew), only pairs with one of those
    groups are weighed."""
    roots, group_of_item = np.unique(labels, return_inverse=True)
    group_count = len(roots)
    membership = sp.csr_matrix(
        (np.ones(len(labels)), (group_of_item, np.arange(len(labels)))),
        shape=(group_count, len(labels)),
    )
    sums = sp.csr_matrix(membership @ features.lexical)
    norms = _row_norms(sums)
    firsts, seconds, cosines = _similar_pairs(
        _normalise_rows(sums),
        settings.candidate_similarity,
        settings,
        None if changed is None else np.searchsorted(roots, changed),
    )
    # The combined vector of an item is its unit word vector scaled by sqrt(1 - w) beside its
    # unit meaning vector scaled by sqrt(w): dot products and squared norms of group sums
    # then add up under merging, as `_agglomerate` needs.
    weight = settings.dense_weight if features.dense.shape[1] else 0.0
    dots = (1.0 - weight) * cosines * norms[firsts] * norms[seconds]
    self_similarity = (1.0 - weight) * norms**2
    if weight:
        dense_sums = np.asarray(membership.astype(np.float32) @ features.dense, dtype=np.float32)
        dots += weight * _row_dots(dense_sums, firsts, seconds)
        self_similarity += weight * np.einsum("ij,ij->i", dense_sums, dense_sums).astype(np.float64)
    sizes = np.bincount(group_of_item, minlength=group_count)
    # The links that clear their bar now, best first (ties by pair), as `_agglomerate` needs.
    gaps = dots / np.sqrt(self_similarity[firsts] * self_similarity[seconds]) - (
        settings.merge_similarity
        + (settings.pair_similarity - settings.merge_similarity)
        / np.maximum(sizes[firsts], sizes[seconds])
    )
    ready = np.flatnonzero(gaps >= 0)
    ready = ready[np.lexsort((seconds[ready], firsts[ready], -gaps[ready]))]
    merged_into = _agglomerate(
        sizes=sizes.tolist(),
        self_similarity=self_similarity.tolist(),
        links=zip(firsts.tolist(), seconds.tolist(), dots.tolist(), strict=True),
        ready=zip(
            (-gaps[ready]).tolist(), firsts[ready].tolist(), seconds[ready].tolist(), strict=True
        ),
        evidence=_MemberCounts(sp.csr_matrix(membership @ features.evidence)),
        specificity=features.specificity,
        settings=settings,
    )
    return np.asarray(roots[np.asarray(merged_into)[group_of_item]], dtype=np.int64)


def _row_dots(
    rows: NDArray[np.float32], firsts: NDArray[np.int64], seconds: NDArray[np.int64]
) -> NDArray[np.float64]:
    """rows[firsts[k]] . rows[seconds[k]] for every k, in chunks that bound the memory."""
    out = np.empty(len(firsts), dtype=np.float64)
    step = 8_192
    for start in range(0, len(firsts), step):
        stop = start + step
        out[start:stop] = np.einsum("ij,ij->i", rows[firsts[start:stop]], rows[seconds[start:stop]])
    return out


class _MemberCounts:
    """Each group's member counts per specific word, as a dict made only when a merge or an
    evidence check first needs that group's: most groups of a round never do, and all of
    them as dicts cost over 100 MB at 50,000 items with texts."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self._indptr = matrix.indptr
        self._indices = matrix.indices
        # Python ints: small ones are shared objects, floats would each cost 24 bytes.
        self._data = np.rint(matrix.data).astype(np.int64)
        self._made: dict[int, dict[int, int]] = {}

    def __getitem__(self, group: int) -> dict[int, int]:
        found = self._made.get(group)
        if found is None:
            start, stop = self._indptr[group], self._indptr[group + 1]
            found = dict(
                zip(
                    self._indices[start:stop].tolist(),
                    self._data[start:stop].tolist(),
                    strict=True,
                )
            )
            self._made[group] = found
        return found

    def __setitem__(self, group: int, counts: dict[int, int]) -> None:
        self._made[group] = counts


def _agglomerate(
    *,
    sizes: list[int],
    self_similarity: list[float],
    links: Iterable[tuple[int, int, float]],
    ready: Iterable[tuple[float, int, int]],
    evidence: _MemberCounts,
    specificity: NDArray[np.float64],
    settings: GroupingSettings,
) -> list[int]:
    """Greedy best-first merging of groups; returns, for each group, the group it ended in.

    `links` gives (a, b, w) with w the dot product of the two groups' summed vectors and
    `self_similarity[a]` the squared norm of a's sum, so the centroid cosine of a and b is
    w / sqrt(self_similarity[a] * self_similarity[b]). Both add up under merging, which keeps
    every update exact for the links that are known. `ready` gives the links that clear
    their bar at the start as (-margin, a, b), a < b, in ascending order. `evidence[a]`
    counts, for each specific word (a column of `specificity`), a's members that have it; a
    pair merges only when its members share `min_evidence` on average (see `_shared_evidence`).
    """
    count = len(sizes)
    neighbours: list[dict[int, float]] = [{} for _ in range(count)]
    for first, second, weight in links:
        neighbours[first][second] = weight
        neighbours[second][first] = weight
    version = [0] * count
    alive = [True] * count
    parent = list(range(count))
    span = settings.pair_similarity - settings.merge_similarity

    def margin(first: int, second: int, weight: float) -> float:
        cosine = weight / math.sqrt(self_similarity[first] * self_similarity[second])
        needed = settings.merge_similarity + span / max(sizes[first], sizes[second])
        return cosine - needed

    def cosine(first: int, second: int) -> float:
        weight = neighbours[first][second]
        return weight / math.sqrt(self_similarity[first] * self_similarity[second])

    # The links ready at the start come sorted; only those that merges change go through the
    # heap, so pops stay cheap. The two streams merge into one order, as one heap would give.
    initial = iter(ready)
    waiting = next(initial, None)
    heap: list[tuple[float, int, int, int, int]] = []
    while heap or waiting is not None:
        if waiting is not None and (not heap or (*waiting, 0, 0) < heap[0]):
            (_, first, second), first_version, second_version = waiting, 0, 0
            waiting = next(initial, None)
        else:
            _, first, second, first_version, second_version = heapq.heappop(heap)
        if not (alive[first] and alive[second]):
            continue
        if version[first] != first_version or version[second] != second_version:
            continue
        # Below the bar of two single items (a bar only a growing group gets), a merge also
        # needs specific evidence at both groups' cores.
        if cosine(first, second) < settings.pair_similarity and (
            _shared_evidence(
                evidence[first], sizes[first], evidence[second], sizes[second], specificity
            )
            < settings.min_evidence
        ):
            continue
        # Fold the smaller neighbourhood into the larger one: fewer dictionary updates.
        if len(neighbours[first]) < len(neighbours[second]):
            first, second = second, first
        shared = neighbours[first].pop(second)
        del neighbours[second][first]
        for other, weight in neighbours[second].items():
            del neighbours[other][second]
            combined = neighbours[first].get(other, 0.0) + weight
            neighbours[first][other] = combined
            neighbours[other][first] = combined
        neighbours[second] = {}

        if len(evidence[first]) < len(evidence[second]):
            evidence[first], evidence[second] = evidence[second], evidence[first]
        kept = evidence[first]
        for term, amount in evidence[second].items():
            kept[term] = kept.get(term, 0) + amount
        evidence[second] = {}
        alive[second] = False
        parent[second] = first
        sizes[first] += sizes[second]
        self_similarity[first] += self_similarity[second] + 2.0 * shared
        version[first] += 1
        for other, weight in neighbours[first].items():
            gap = margin(first, other, weight)
            if gap >= 0:
                low, high = min(first, other), max(first, other)
                heapq.heappush(heap, (-gap, low, high, version[low], version[high]))

    def root(group: int) -> int:
        while parent[group] != group:
            group = parent[group]
        return group

    return [root(group) for group in range(count)]


def _shared_evidence(
    first: dict[int, int],
    first_size: int,
    second: dict[int, int],
    second_size: int,
    specificity: NDArray[np.float64],
) -> float:
    """The specificity summed over the words at the core of both groups: words that more
    than half of each group's members have (all of a single item's words). A story is thus
    compared with its members as a whole: a word that one member brought in, where a chain
    would attach, is not evidence until most members share it."""
    if len(first) > len(second):
        first, first_size, second, second_size = second, second_size, first, first_size
    total = 0.0
    for term, members in first.items():
        if 2 * members > first_size and 2 * second.get(term, 0) > second_size:
            total += specificity[term]
    return total
