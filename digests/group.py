"""Story grouping: decide which news items are about the same story.

Pure functions, no I/O beyond reading the English word frequencies that ship with `wordfreq`.
Items become TF-IDF vectors over their title words (plus a little of their text). The IDF blends
the batch's document frequencies with general English ones, so weights do not hinge on the batch
size: a collection run often brings only a few dozen items. Two passes then build the groups:

1. Near-duplicates (wire copies, identical or near-identical titles or text) are joined outright.
2. Groups are merged agglomeratively by the cosine between their summed vectors (centroid
   cosine). A pair of single items must clear a strict bar, but the bar falls towards
   ``merge_similarity`` as the larger group grows, because a big group's centroid is a much
   steadier signal than one headline. This is what lets a 200-headline story with drifting
   vocabulary come together while two unrelated headlines that share a word stay apart.

Candidate pairs come from a sparse matrix product computed in row blocks, so memory stays
proportional to the pairs that are actually similar rather than to all pairs. The merge pass
runs in rounds; each round recomputes the group vectors exactly, so a similarity dropped below
the candidate floor in one round is seen again in the next.
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


@dataclass(frozen=True)
class GroupInput:
    item_id: str
    title: str
    text: str  # plain text, may be empty; only the first `text_max_chars` characters are used
    source: str  # source name or publisher
    published: datetime  # tz-aware UTC; not used for grouping yet


@dataclass(frozen=True)
class GroupingSettings:
    """Shipped defaults, picked by a small sweep on the UCI dev headlines (tests/bench)."""

    # Title-vector cosine at or above which two items are near-duplicates and joined outright.
    near_duplicate_similarity: float = 0.8
    # Texts whose normalised openings match over this many characters are wire copies.
    text_fingerprint_chars: int = 300
    # Centroid cosine needed to merge two single items.
    pair_similarity: float = 0.35
    # Centroid cosine needed as the larger of the two groups grows large.
    merge_similarity: float = 0.18
    # Group pairs below this centroid cosine are not considered within a round.
    candidate_similarity: float = 0.15
    max_merge_rounds: int = 8
    # How many documents the background word frequencies count as in the IDF. A batch much
    # smaller than this is weighted mostly by general English, a much larger one by itself.
    # A round figure, not tuned: 100 to 3000 all keep UCI BCubed F1 within 0.862-0.866.
    background_documents: float = 1000.0
    # Weight of a text word relative to a title word, and how much text to read.
    text_weight: float = 0.5
    text_max_chars: int = 600
    # Rows per block of the sparse similarity product (bounds peak memory).
    block_rows: int = 1024
    story_id_prefix: str = "st_"


def assign_stories(
    new: Sequence[GroupInput],
    anchors: Sequence[tuple[GroupInput, str]] = (),
    *,
    settings: GroupingSettings = GroupingSettings(),
) -> dict[str, str]:
    """Map every new item_id to a story id.

    `anchors` are recently grouped items with their existing story ids: a new item that belongs
    to an anchor's story gets that story id; otherwise new items form new stories, whose ids are
    'st_' plus a short hash of the smallest member id. Anchors of different stories are never
    merged. The result does not depend on the order of `new` or `anchors`.
    """
    new_ids = {item.item_id for item in new}
    # Sorting by id makes every later step, including float summation order, order-independent.
    entries: list[tuple[GroupInput, str | None]] = sorted(
        [(item, None) for item in {item.item_id: item for item in new}.values()]
        + [(item, story) for item, story in anchors if item.item_id not in new_ids],
        key=lambda entry: entry[0].item_id,
    )
    if not entries:
        return {}
    items = [item for item, _ in entries]
    stories = [story for _, story in entries]

    vectors = _tfidf([_term_counts(item, settings) for item in items], settings)
    labels = _near_duplicate_labels(items, stories, vectors, settings)
    for _ in range(settings.max_merge_rounds):
        merged = _merge_round(vectors, labels, stories, settings)
        if np.array_equal(merged, labels):
            break
        labels = merged

    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        members.setdefault(label, []).append(index)
    result: dict[str, str] = {}
    for group in members.values():
        anchor_story = next((stories[i] for i in group if stories[i] is not None), None)
        story_id = anchor_story or _new_story_id(items[group[0]].item_id, settings)
        for index in group:
            if stories[index] is None:
                result[items[index].item_id] = story_id
    return result


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
    decomposed = unicodedata.normalize("NFKD", html.unescape(text))
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


def _words(text: str, ignored: frozenset[str]) -> list[str]:
    words = _WORD.findall(_TRAILING_ELLIPSIS.sub("", _fold(text)))
    # Checked before and after stemming: "does" is a stopword, its stem "doe" is not.
    stems = (_stem(word) for word in words if word not in _STOPWORDS)
    return [word for word in stems if word not in _STOPWORDS and word not in ignored]


def _term_counts(item: GroupInput, settings: GroupingSettings) -> dict[str, float]:
    # Headlines often carry the outlet's name ("... | Huffingtonpost"); it is not the story.
    source_words = frozenset(_stem(word) for word in _WORD.findall(_fold(item.source)))
    counts: dict[str, float] = dict(Counter(_words(item.title, source_words)))
    for word in _words(item.text[: settings.text_max_chars], source_words):
        counts[word] = counts.get(word, 0.0) + settings.text_weight
    return counts


def _tfidf(documents: list[dict[str, float]], settings: GroupingSettings) -> sp.csr_matrix:
    """Rows are L2-normalised sublinear-tf, smoothed-idf vectors (all-zero rows stay zero).

    Document frequencies are the batch's own plus `background_documents` pseudo-documents
    drawn from general English, so a word every headline in a batch of four shares still
    counts as rare when it is rare in English ("outage"), and a common word stays cheap
    however few items mention it ("world").
    """
    vocabulary: dict[str, int] = {}
    indptr = [0]
    indices: list[int] = []
    weights: list[float] = []
    for counts in documents:
        for term, count in sorted(counts.items()):
            indices.append(vocabulary.setdefault(term, len(vocabulary)))
            weights.append(1.0 + math.log(count) if count >= 1 else count)
        indptr.append(len(indices))
    matrix = sp.csr_matrix(
        (np.array(weights), np.array(indices, dtype=np.int64), np.array(indptr)),
        shape=(len(documents), len(vocabulary)),
    )
    background = _background_document_fraction()
    prior = np.fromiter(
        (background.get(_background_key(term), _UNSEEN_FRACTION) for term in vocabulary),
        dtype=np.float64,
        count=len(vocabulary),
    )
    document_frequency = np.bincount(matrix.indices, minlength=len(vocabulary))
    pseudo = settings.background_documents
    idf = np.log((1.0 + len(documents) + pseudo) / (1.0 + document_frequency + pseudo * prior))
    matrix.data *= (idf + 1.0)[matrix.indices]
    return _normalise_rows(matrix)


# A news item (headline plus a line of text) holds about this many words, which turns a word's
# share of all English words into the share of items that contain it.
_WORDS_PER_ITEM = 20
# Words missing from the list are rarer than its floor of one in a million.
_UNSEEN_FRACTION = 1.0 - math.exp(-1e-6 * _WORDS_PER_ITEM)
_DIGIT = re.compile(r"\d")


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


def _normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = _row_norms(matrix)
    norms[norms == 0] = 1.0
    scaled: sp.csr_matrix = sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)
    return scaled


def _row_norms(matrix: sp.csr_matrix) -> NDArray[np.float64]:
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1), dtype=np.float64).ravel())


def _similar_pairs(
    unit_rows: sp.csr_matrix, floor: float, block_rows: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """All pairs i < j of L2-normalised rows with cosine >= floor, as (i, j, cosine) arrays."""
    transposed = unit_rows.T.tocsc()
    firsts, seconds, cosines = [], [], []
    for start in range(0, unit_rows.shape[0], block_rows):
        stop = min(start + block_rows, unit_rows.shape[0])
        # Only columns from `start` on: the pairs before it were found by earlier blocks.
        block = (unit_rows[start:stop] @ transposed[:, start:]).tocoo()
        keep = (block.col + start > block.row + start) & (block.data >= floor)
        firsts.append(block.row[keep].astype(np.int64) + start)
        seconds.append(block.col[keep].astype(np.int64) + start)
        cosines.append(block.data[keep])
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(cosines)


# --- pass 1: near-duplicates ---------------------------------------------------------------


def _near_duplicate_labels(
    items: list[GroupInput],
    stories: list[str | None],
    vectors: sp.csr_matrix,
    settings: GroupingSettings,
) -> NDArray[np.int64]:
    groups = _StoryUnion(stories)
    # Anchors already grouped into the same story start as one group.
    first_of_story: dict[str, int] = {}
    for index, story in enumerate(stories):
        if story is not None:
            groups.union(first_of_story.setdefault(story, index), index)

    first_with_key: dict[str, int] = {}
    for index, item in enumerate(items):
        text_key = _fold(" ".join(item.text.split()))[: settings.text_fingerprint_chars]
        keys = [" ".join(_words(item.title, frozenset()))]
        if len(text_key) == settings.text_fingerprint_chars:
            keys.append("text:" + text_key)
        for key in keys:
            if key:
                groups.union(first_with_key.setdefault(key, index), index)

    firsts, seconds, _ = _similar_pairs(
        vectors, settings.near_duplicate_similarity, settings.block_rows
    )
    for first, second in zip(firsts.tolist(), seconds.tolist(), strict=True):
        groups.union(first, second)
    return np.array([groups.find(index) for index in range(len(items))], dtype=np.int64)


class _StoryUnion:
    """Union-find that refuses to join groups holding anchors of different stories."""

    def __init__(self, stories: list[str | None]) -> None:
        self._parent = list(range(len(stories)))
        self._story = list(stories)

    def find(self, index: int) -> int:
        root = index
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[index] != root:
            self._parent[index], index = root, self._parent[index]
        return root

    def union(self, first: int, second: int) -> None:
        first, second = self.find(first), self.find(second)
        story_a, story_b = self._story[first], self._story[second]
        if first == second or (story_a and story_b and story_a != story_b):
            return
        first, second = min(first, second), max(first, second)
        self._parent[second] = first
        self._story[first] = story_a or story_b


# --- pass 2: centroid merging ----------------------------------------------------------------


def _merge_round(
    vectors: sp.csr_matrix,
    labels: NDArray[np.int64],
    stories: list[str | None],
    settings: GroupingSettings,
) -> NDArray[np.int64]:
    """One round of agglomerative merging of the current groups; returns the new labels."""
    roots, group_of_item = np.unique(labels, return_inverse=True)
    group_count = len(roots)
    membership = sp.csr_matrix(
        (np.ones(len(labels)), (group_of_item, np.arange(len(labels)))),
        shape=(group_count, len(labels)),
    )
    sums = sp.csr_matrix(membership @ vectors)
    norms = _row_norms(sums)
    firsts, seconds, cosines = _similar_pairs(
        _normalise_rows(sums), settings.candidate_similarity, settings.block_rows
    )
    group_story: list[str | None] = [None] * group_count
    for index, story in enumerate(stories):
        if story is not None:
            group_story[group_of_item[index]] = story
    merged_into = _agglomerate(
        sizes=np.bincount(group_of_item, minlength=group_count).tolist(),
        self_similarity=(norms**2).tolist(),
        stories=group_story,
        links=zip(
            firsts.tolist(),
            seconds.tolist(),
            (cosines * norms[firsts] * norms[seconds]).tolist(),
            strict=True,
        ),
        settings=settings,
    )
    return np.asarray(roots[np.asarray(merged_into)[group_of_item]], dtype=np.int64)


def _agglomerate(
    *,
    sizes: list[int],
    self_similarity: list[float],
    stories: list[str | None],
    links: Iterable[tuple[int, int, float]],
    settings: GroupingSettings,
) -> list[int]:
    """Greedy best-first merging of groups; returns, for each group, the group it ended in.

    `links` gives (a, b, w) with w the dot product of the two groups' summed vectors and
    `self_similarity[a]` the squared norm of a's sum, so the centroid cosine of a and b is
    w / sqrt(self_similarity[a] * self_similarity[b]). Both add up under merging, which keeps
    every update exact for the links that are known.
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

    def compatible(first: int, second: int) -> bool:
        story_a, story_b = stories[first], stories[second]
        return story_a is None or story_b is None or story_a == story_b

    heap: list[tuple[float, int, int, int, int]] = []
    for first in range(count):
        for second, weight in neighbours[first].items():
            gap = margin(first, second, weight)
            if first < second and gap >= 0 and compatible(first, second):
                heap.append((-gap, first, second, 0, 0))
    heapq.heapify(heap)

    while heap:
        _, first, second, first_version, second_version = heapq.heappop(heap)
        if not (alive[first] and alive[second]):
            continue
        if version[first] != first_version or version[second] != second_version:
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
        alive[second] = False
        parent[second] = first
        sizes[first] += sizes[second]
        self_similarity[first] += self_similarity[second] + 2.0 * shared
        stories[first] = stories[first] or stories[second]
        version[first] += 1
        for other, weight in neighbours[first].items():
            gap = margin(first, other, weight)
            if gap >= 0 and compatible(first, other):
                low, high = min(first, other), max(first, other)
                heapq.heappush(heap, (-gap, low, high, version[low], version[high]))

    def root(group: int) -> int:
        while parent[group] != group:
            group = parent[group]
        return group

    return [root(group) for group in range(count)]
