"""Clustering scores for storying: BCubed and pairwise precision/recall/F1.

Test and benchmark helper only; not shipped with the daemon.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
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


def bcubed(
    predicted: Mapping[str, str],
    truth: Mapping[str, str],
    only: Collection[str] | None = None,
) -> Scores:
    """Per-item precision/recall of the item's predicted group against its true group, averaged.

    Both mappings go from item id to a group label and must cover the same items. With `only`,
    the average runs over those items alone, while their groups still count every item: a
    held-out story is scored as it was grouped among all the others.
    """
    if predicted.keys() != truth.keys():
        raise ValueError("predicted and truth must label the same items")
    scored = truth.keys() if only is None else set(only)
    if not scored:
        return Scores(1.0, 1.0)
    joint = Counter((predicted[item], truth[item]) for item in truth)
    joint_scored = Counter((predicted[item], truth[item]) for item in scored)
    predicted_sizes = Counter(predicted.values())
    true_sizes = Counter(truth.values())
    precision = recall = 0.0
    # Every item in a (predicted, true) cell has the same per-item scores, so sum per cell.
    for (pred_label, true_label), count in joint_scored.items():
        overlap = joint[pred_label, true_label]
        precision += count * overlap / predicted_sizes[pred_label]
        recall += count * overlap / true_sizes[true_label]
    return Scores(precision / len(scored), recall / len(scored))


def pairwise(
    predicted: Mapping[str, str],
    truth: Mapping[str, str],
    only: Collection[str] | None = None,
) -> Scores:
    """Precision/recall over the unordered item pairs placed in the same group; with `only`,
    over the pairs with at least one of those items."""
    if predicted.keys() != truth.keys():
        raise ValueError("predicted and truth must label the same items")
    scored = truth.keys() if only is None else set(only)

    def pairs_in(groups: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in groups.values())

    unscored = [item for item in truth if item not in scored]
    joint = Counter((predicted[item], truth[item]) for item in truth)
    joint_unscored = Counter((predicted[item], truth[item]) for item in unscored)
    together_in_both = pairs_in(joint) - pairs_in(joint_unscored)
    together_predicted = pairs_in(Counter(predicted.values())) - pairs_in(
        Counter(predicted[item] for item in unscored)
    )
    together_true = pairs_in(Counter(truth.values())) - pairs_in(
        Counter(truth[item] for item in unscored)
    )
    precision = together_in_both / together_predicted if together_predicted else 1.0
    recall = together_in_both / together_true if together_true else 1.0
    return Scores(precision, recall)
