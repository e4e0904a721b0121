"""What story grouping (digests/group.py) takes and gives: plain values, no numpy or scipy.

The daemon builds these and hands them to a grouping child process (daemon/child.py): kept
apart from the algorithm, whose scipy would cost the daemon itself about 30 MB it never uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class GroupInput:
    item_id: str
    title: str
    text: str  # plain text, may be empty; only the first `text_max_chars` characters are read
    source: str  # source name or publisher
    published: datetime  # tz-aware UTC; not used for grouping yet


@dataclass(frozen=True)
class GroupingSettings:
    """Shipped defaults: the two similarity bars and `min_evidence` are the grid point with the
    best cross-validated figure on the UCI dev headlines (tests/bench/bench_grouping.py)."""

    # Title-vector cosine at or above which two items are near-duplicates and joined outright.
    near_duplicate_similarity: float = 0.8
    # Texts with the same distinctive words (the rarest shared ones, the source's furniture
    # dropped), at least this many, are wire copies: how a text opens does not decide it.
    text_fingerprint_terms: int = 8
    # Centroid cosine needed to merge two single items.
    pair_similarity: float = 0.4
    # Centroid cosine needed as the larger of the two groups grows large.
    merge_similarity: float = 0.2
    # Group pairs below this centroid cosine are not considered within a round.
    candidate_similarity: float = 0.15
    # Rounds after the first re-examine pairs the gate or the floor held back. Each costs
    # seconds at 50k items; a cap at 4 cost 0.002 cross-validated BCubed F1 (0.880 -> 0.878).
    max_merge_rounds: int = 8
    # How many documents the background word frequencies count as in the IDF. A batch much
    # smaller than this is weighted mostly by general English, a much larger one by itself.
    # A round figure, not tuned: 100 to 3000 all keep UCI BCubed F1 within 0.862-0.866.
    background_documents: float = 1000.0
    # Weight of a text word relative to a title word, and how much text to read. Callers may
    # pass texts cut to `text_max_chars`: nothing after it changes the result.
    text_weight: float = 0.5
    text_max_chars: int = 600
    # Text words beyond the title's that count: the rarest this many (by IDF), and only words
    # in at most this share of the items (batch and background blended, as in the IDF). Bounds
    # each item's vector, so the common words of long texts do not link every item to every
    # other; title words always count.
    text_max_terms: int = 30
    text_max_share: float = 0.02
    # A text word in more than half of one source's items is that source's furniture (a wire
    # footer, a byline, a "subscribe" line), once the batch has this many of its items.
    furniture_min_items: int = 4
    # Share of the cosine that comes from the meaning of the titles (wordllama's in-wheel
    # 256-dimensional vectors) rather than from their words; 0 skips the model.
    dense_weight: float = 0.5
    # Specific evidence two groups must share to merge below `pair_similarity`: the
    # specificity (0 for a common English word such as "best" or "gas", up to 1 for a name or
    # a rare word) summed over the words at both groups' cores (see `_shared_evidence`). One
    # generic topic word is not a story.
    min_evidence: float = 0.5
    # An anchor story whose anchors the fresh grouping puts in different groups splits: a
    # part of at least this many anchors moves to that group's story; smaller parts stay.
    split_min_items: int = 2
    # Each item or group keeps links to at most this many most similar others per pass, so a
    # story of thousands of near-identical items costs thousands of links, not millions.
    max_neighbours: int = 100
    # Entries of the sparse similarity product computed at once (bounds peak memory).
    block_entries: int = 500_000
    story_id_prefix: str = "st_"


@dataclass(frozen=True)
class Assignment:
    """What one grouping run decided.

    `stories` maps every new item id to its story id. `merged` maps each anchor story that the
    run folded into another to the story id that survives (never itself a merged story); every
    item of a merged story, in the anchors or older, now belongs to the survivor. `moved` maps
    anchors that leave their story (a split) to the story they now belong to, an existing one
    or a new one; it applies after `merged`.
    """

    stories: Mapping[str, str]
    merged: Mapping[str, str]
    moved: Mapping[str, str] = field(default_factory=dict)
