"""Clustering scores for storying: BCubed and pairwise precision/recall/F1.

Test and benchmark helper only; not shipped with the daemon.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def __str__(self) -> str:
        return f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f}"


def bcubed(predicted: Mapping[str, str], truth: Mapping[str, str]) -> Scores:
    """Per-item precision/recall of the item's predicted group against its true group, averaged.

    Both mappings go from item id to a group label and must cover the same items.
    """
    if predicted.keys() != truth.keys():
        raise ValueError("predicted and truth must label the same items")
    if not truth:
        return Scores(1.0, 1.0)
    joint = Counter((predicted[item], truth[item]) for item in truth)
    predicted_sizes = Counter(predicted.values())
    true_sizes = Counter(truth.values())
    precision = recall = 0.0
    # Every item in a (predicted, true) cell has the same per-item scores, so sum per cell.
    for (pred_label, true_label), overlap in joint.items():
        precision += overlap * overlap / predicted_sizes[pred_label]
        recall += overlap * overlap / true_sizes[true_label]
    return Scores(precision / len(truth), recall / len(truth))


def pairwise(predicted: Mapping[str, str], truth: Mapping[str, str]) -> Scores:
    """Precision/recall over the unordered item pairs placed in the same group."""
    if predicted.keys() != truth.keys():
        raise ValueError("predicted and truth must label the same items")

    def pairs(count: int) -> int:
        return count * (count - 1) // 2

    joint = Counter((predicted[item], truth[item]) for item in truth)
    together_in_both = sum(pairs(n) for n in joint.values())
    together_predicted = sum(pairs(n) for n in Counter(predicted.values()).values())
    together_true = sum(pairs(n) for n in Counter(truth.values()).values())
    precision = together_in_both / together_predicted if together_predicted else 1.0
    recall = together_in_both / together_true if together_true else 1.0
    return Scores(precision, recall)
