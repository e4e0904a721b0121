"""Focus signal quality: does "matches this digest's focus" mean what the reader asked for?

    python tests/bench/bench_focus.py          # before (word overlap) and after (meaning)
    python tests/bench/bench_focus.py --tune   # also sweep the match threshold on the tune half

tests/data/relevance.json holds 150 items of the 24 shared captures, each labelled by hand
as relevant or not to three focus texts (world affairs, technology for engineers, money).
The items are split in two by position: thresholds are chosen on the even ones (tune) and
the figures are scored on the odd ones (test), never on what was tuned. Per focus text:
precision@10 of the items ranked by the signal, and recall and precision of "matches"
(the items the digest would say match its focus). Figures are means over the three focus
texts. The items are collected through the real pipeline from the captures
(tests/bench/offline_showcase.py), so their texts are what the digest reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import wordfreq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from offline_showcase import CAPTURES, collected  # noqa: E402

from core.items import StoredItem  # noqa: E402
from digests import focus  # noqa: E402
from digests.boilerplate import strip_all  # noqa: E402
from digests.meaning import embed  # noqa: E402
from digests.similarity import words  # noqa: E402

LABELS = REPO / "tests" / "data" / "relevance.json"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A scorer gives each item a number for a focus text; "matches" is the number >= threshold.
Scorer = Callable[[str, Sequence[StoredItem]], list[float]]


def word_overlap(text: str, items: Sequence[StoredItem]) -> list[float]:
    """Before: the share of the focus's words in the titles (digests/signals.py until now)."""
    wanted = words(text)
    return [len(words(item.title) & wanted) / len(wanted) for item in items]


def meaning(text: str, items: Sequence[StoredItem]) -> list[float]:
    """After: WordLlama similarity to the focus or its closest facet (digests/focus.py)."""
    judged = focus.focus_of(text)
    vectors = embed([focus.story_text([item.title], item.text) for item in items])
    sims = vectors @ judged.vectors.T
    return [float(row.max()) for row in sims]


def meaning_whole(text: str, items: Sequence[StoredItem]) -> list[float]:
    """The whole focus text only, without facets."""
    judged = embed([text])
    vectors = embed([focus.story_text([item.title], item.text) for item in items])
    return [float(v) for v in vectors @ judged[0]]


def meaning_and_rare_words(text: str, items: Sequence[StoredItem]) -> list[float]:
    """Tried and not shipped: meaning plus 0.05 when the item uses an uncommon focus word."""
    rare = {word for word in words(text) if wordfreq.zipf_frequency(word, "en") < 5.0}
    return [
        score + (0.05 if words(focus.story_text([item.title], item.text)) & rare else 0.0)
        for score, item in zip(meaning(text, items), items, strict=True)
    ]


def figures(
    scores: Sequence[float], relevant: Sequence[bool], threshold: float
) -> tuple[float, float, float]:
    """precision@10, recall and precision of score >= threshold."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    p10 = sum(relevant[i] for i in order[:10]) / 10
    hits = [i for i in range(len(scores)) if scores[i] >= threshold]
    recall = sum(relevant[i] for i in hits) / max(1, sum(relevant))
    precision = sum(relevant[i] for i in hits) / len(hits) if hits else 0.0
    return p10, recall, precision


def mean_figures(
    scorer: Scorer,
    foci: dict[str, str],
    items: Sequence[StoredItem],
    labels: Sequence[set[str]],
    threshold: float,
) -> tuple[float, float, float]:
    rows = [
        figures(scorer(text, items), [name in label for label in labels], threshold)
        for name, text in foci.items()
    ]
    return tuple(sum(column) / len(rows) for column in zip(*rows, strict=True))  # type: ignore[return-value]


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--tune", action="store_true", help="sweep thresholds on the tune half")
    args = parser.parse_args()
    document = json.loads(LABELS.read_text(encoding="utf-8"))
    foci: dict[str, str] = document["focus"]
    with (
        tempfile.TemporaryDirectory(prefix="trendfinder-focus-") as scratch,
        collected(CAPTURES, Path(scratch)) as (store, _),
    ):
        stored = strip_all(store.grouped_items_since(EPOCH))
    by_key = {(item.sources[0], item.title): item for item in stored if item.sources}
    labelled = [
        (by_key[(row["source"], row["title"])], set(row["relevant"])) for row in document["items"]
    ]
    halves = {"tune": labelled[0::2], "test": labelled[1::2]}
    scorers: dict[str, tuple[Scorer, float]] = {
        "before: word overlap (any shared focus word)": (word_overlap, 1e-9),
        "after: meaning, whole focus text": (meaning_whole, focus.MATCH),
        "after: meaning, focus or facet (shipped)": (meaning, focus.MATCH),
        "tried: meaning + an uncommon focus word": (meaning_and_rare_words, focus.MATCH),
    }
    if args.tune:
        tune_items = [item for item, _ in halves["tune"]]
        tune_labels = [label for _, label in halves["tune"]]
        for name, (scorer, _) in list(scorers.items())[1:]:
            print(f"tune half, {name}:")
            for step in range(10, 42, 2):
                threshold = step / 100
                p10, recall, precision = mean_figures(
                    scorer, foci, tune_items, tune_labels, threshold
                )
                print(
                    f"  threshold {threshold:.2f}: P@10 {p10:.2f} recall {recall:.2f} "
                    f"precision {precision:.2f} F1 {f1(precision, recall):.2f}"
                )
    load = os.getloadavg()[0]
    counts = {name: sum(name in label for _, label in halves["test"]) for name in foci}
    print(
        f"test half: {len(halves['test'])} items, relevant per focus {counts} "
        f"(load average {load:.2f})"
    )
    print(f"{'signal':48} {'P@10':>5} {'recall':>6} {'precision':>9}")
    test_items = [item for item, _ in halves["test"]]
    test_labels = [label for _, label in halves["test"]]
    for name, (scorer, threshold) in scorers.items():
        p10, recall, precision = mean_figures(scorer, foci, test_items, test_labels, threshold)
        print(f"{name:48} {p10:5.2f} {recall:6.2f} {precision:9.2f}")


if __name__ == "__main__":
    main()
