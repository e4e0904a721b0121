"""Article-extraction scores on the scrapinghub article-extraction-benchmark.

Test and benchmark helper only; not shipped with the daemon. Follows the conventions of the
benchmark's evaluate.py: tokens are ``\\w+`` runs (case kept, punctuation dropped), shingles
are 4-token windows counted as a multiset, precision is averaged over the pages with any
output, recall over the pages with any ground truth, and F1 is the harmonic mean of those two
averages. The mean of per-page F1 is given too, as the stricter per-page view.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SHINGLE = 4
_TOKEN = re.compile(r"\w+")
_DATASET = Path("data", "extraction", "scrapinghub")


@dataclass(frozen=True)
class Match:
    """Shingle counts of one page: true positives, false positives, false negatives."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    mean_page_f1: float


def shingles(text: str) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text)
    # A text shorter than one shingle counts as a single short shingle, as in evaluate.py.
    if len(tokens) < SHINGLE:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i : i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1))


def match(truth: str, predicted: str) -> Match:
    true_counts, predicted_counts = shingles(truth), shingles(predicted)
    return Match(
        tp=sum((true_counts & predicted_counts).values()),
        fp=sum((predicted_counts - true_counts).values()),
        fn=sum((true_counts - predicted_counts).values()),
    )


def score(matches: Sequence[Match]) -> Scores:
    precisions = [m.precision for m in matches if m.tp + m.fp]
    recalls = [m.recall for m in matches if m.tp + m.fn]
    precision = statistics.mean(precisions) if precisions else 0.0
    recall = statistics.mean(recalls) if recalls else 0.0
    total = precision + recall
    return Scores(
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / total if total else 0.0,
        mean_page_f1=statistics.mean(m.f1 for m in matches) if matches else 0.0,
    )


@dataclass(frozen=True)
class Page:
    id: str
    url: str
    html: bytes
    body: str


def dataset_dir() -> Path | None:
    """The benchmark data: $TRENDFINDER_SHARED/data/..., else the first shared/ folder beside
    the repository or one of its parents (CI clones the repo with shared/ beside it; a git
    worktree sits one level deeper)."""
    root = Path(__file__).resolve().parents[2]
    override = os.environ.get("TRENDFINDER_SHARED")
    candidates = [Path(override)] if override else [p / "shared" for p in root.parents]
    for shared in candidates:
        if (shared / _DATASET / "ground-truth.json").is_file():
            return shared / _DATASET
    return None


def load_pages(directory: Path, every: int = 1) -> Iterator[Page]:
    """Pages in id order; ``every`` > 1 takes a deterministic sample (every n-th page)."""
    truth = json.loads((directory / "ground-truth.json").read_text(encoding="utf-8"))
    for page_id in sorted(truth)[::every]:
        with gzip.open(directory / "html" / f"{page_id}.html.gz") as f:
            html = f.read()
        entry = truth[page_id]
        yield Page(page_id, entry["url"], html, entry.get("articleBody") or "")
