"""Benchmark storying: quality on the labelled UCI headlines, then speed and memory.

Run from the repo root: python tests/bench/bench_grouping.py [--sizes 1000 10000 50000]
[--sections cv dev small texts scale] [--before REV]
`cv` is the figure that counts: 4-fold cross-validation by story, each fold's settings tuned on
the other folds' stories, for the shipped code and for `digests/group.py` as of git REV.
Each size runs in its own subprocess so its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from bench.scoring import Scores, bcubed, pairwise  # noqa: E402
from bench.synthetic import synthetic_day, with_texts  # noqa: E402
from bench.uci import UCI_PATH, LabelledItem, load_uci, small_sparse_days  # noqa: E402
from scipy.cluster.hierarchy import fcluster, linkage  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402

from digests import group  # noqa: E402
from digests.group import assign_stories  # noqa: E402
from digests.grouping import GroupingSettings  # noqa: E402


def plain_tfidf_average_linkage(labelled: list[LabelledItem]) -> tuple[dict[str, str], float]:
    """Textbook baseline: word TF-IDF, all-pairs average linkage, best cut for BCubed F1.

    The cut is chosen on the same data it is scored on, so this flatters the baseline.
    """
    titles = [re.findall(r"[a-z0-9]+", entry.item.title.lower()) for entry in labelled]
    vocabulary = {word: i for i, word in enumerate(sorted({w for t in titles for w in t}))}
    counts = np.zeros((len(titles), len(vocabulary)))
    for row, words in enumerate(titles):
        for word in words:
            counts[row, vocabulary[word]] += 1
    tf = np.where(counts > 0, 1 + np.log(np.maximum(counts, 1)), 0)
    idf = np.log((1 + len(titles)) / (1 + (counts > 0).sum(axis=0))) + 1
    vectors = tf * idf
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    tree = linkage(pdist(vectors, "cosine"), "average")
    truth = truth_of(labelled)
    best: tuple[float, dict[str, str], float] = (-1.0, {}, 0.0)
    for similarity in np.arange(0.02, 0.42, 0.02):
        labels = fcluster(tree, 1 - similarity, "distance")
        predicted = {e.item.item_id: str(lab) for e, lab in zip(labelled, labels, strict=True)}
        f1 = bcubed(predicted, truth).f1
        if f1 > best[0]:
            best = (f1, predicted, float(similarity))
    return best[1], best[2]


def truth_of(labelled: list[LabelledItem]) -> dict[str, str]:
    return {entry.item.item_id: entry.story for entry in labelled}


def row(name: str, b: Scores, p: Scores, extra: str = "") -> str:
    return f"{name:<34} BCubed {b}   pairwise {p}   {extra}"


def tiny_batches(labelled: list[LabelledItem], batches: int) -> list[list[LabelledItem]]:
    """Batches of four headlines, two from each of two stories: a quiet collection run."""
    by_story: dict[str, list[LabelledItem]] = defaultdict(list)
    for entry in labelled:
        by_story[entry.story].append(entry)
    rng = random.Random(0)
    sampled = []
    for _ in range(batches):
        first, second = rng.sample(sorted(by_story), 2)
        sampled.append(rng.sample(by_story[first], 2) + rng.sample(by_story[second], 2))
    return sampled


def streamed(
    labelled: list[LabelledItem],
    batch: int,
    settings: GroupingSettings,
    seed: int = 0,
    module: ModuleType = group,
) -> dict[str, str]:
    """Group the headlines in shuffled batches, each with everything grouped so far as anchors,
    the way the daemon's collection runs do (story merges and splits relabel earlier items, as
    the store does)."""
    order = list(labelled)
    random.Random(seed).shuffle(order)
    by_id = {entry.item.item_id: entry.item for entry in order}
    assigned: dict[str, str] = {}
    for start in range(0, len(order), batch):
        anchors = [(by_id[item_id], story) for item_id, story in assigned.items()]
        new = [entry.item for entry in order[start : start + batch]]
        run = module.assign_stories(new, anchors, settings=settings)
        assigned = {item_id: run.merged.get(story, story) for item_id, story in assigned.items()}
        # The code before splits existed has no `moved`.
        assigned.update(getattr(run, "moved", {}))
        assigned.update(run.stories)
    return assigned


def mean_scores(
    days: list[list[LabelledItem]], module: ModuleType, settings: GroupingSettings
) -> Scores:
    scores = [
        bcubed(
            module.assign_stories([e.item for e in day], settings=settings).stories,
            truth_of(day),
        )
        for day in days
    ]
    # Mean precision and mean recall over the batches (F1 is then of those means).
    return Scores(
        float(np.mean([score.precision for score in scores])),
        float(np.mean([score.recall for score in scores])),
    )


SECTIONS = ("cv", "dev", "small", "texts", "scale")
# The grouping code before issue #11, scored beside the shipped code.
BEFORE = "45b6696"

# Cross-validation by story: folds, the coarse grid tuned within them, the daemon's batch size.
FOLDS = 4
DAEMON_BATCH = 100
DAEMON_SHUFFLES = 2
# The coarse grids tuned within the folds: the shipped code's, and the code before's (which
# has only the two similarity bars).
GRID: dict[str, tuple[float, ...]] = {
    "pair_similarity": (0.4, 0.45),
    "min_evidence": (0.3, 0.5),
}
GRID_BEFORE: dict[str, tuple[float, ...]] = {
    "pair_similarity": (0.35,),
    "merge_similarity": (0.15, 0.18, 0.22),
}
SPARSE_PRECISION_GOAL = 0.98


def story_folds(labelled: list[LabelledItem], folds: int = FOLDS) -> list[list[LabelledItem]]:
    """The stories dealt into folds of near-equal item counts: largest story first, each to
    the fold with the fewest items so far (a seeded shuffle orders stories of equal size)."""
    by_story: dict[str, list[LabelledItem]] = defaultdict(list)
    for entry in labelled:
        by_story[entry.story].append(entry)
    names = sorted(by_story)
    random.Random(0).shuffle(names)
    names.sort(key=lambda name: -len(by_story[name]))
    parts: list[list[LabelledItem]] = [[] for _ in range(folds)]
    for name in names:
        min(parts, key=len).extend(by_story[name])
    return parts


def grid_settings(module: ModuleType, grid: dict[str, tuple[float, ...]]) -> list[GroupingSettings]:
    return [
        module.GroupingSettings(**dict(zip(grid, values, strict=True)))
        for values in itertools.product(*grid.values())
    ]


def describe(settings: GroupingSettings, grid: dict[str, tuple[float, ...]]) -> str:
    return " ".join(f"{name}={getattr(settings, name)}" for name in grid)


def reuse_features(module: ModuleType, grid: dict[str, tuple[float, ...]]) -> None:
    """Memoise the steps before merging by batch: they read none of the grid's fields, so every
    setting of the grid reuses them (the bench's daemon runs see the same batches)."""
    for name in ("_item_vectors", "_near_duplicate_labels"):
        original = getattr(module, name)
        memo: dict[object, object] = {}

        def cached(*args: Any, _original: Any = original, _memo: Any = memo) -> Any:
            settings = args[-1]
            defaults = type(settings)()
            untuned = dataclasses.replace(
                settings, **{field: getattr(defaults, field) for field in grid}
            )
            # Texts too: the texts section regroups the same item ids with texts added.
            key = (tuple((item.item_id, item.text) for item in args[0]), untuned)
            if key not in _memo:
                _memo[key] = _original(*args)
            return _memo[key]

        setattr(module, name, cached)


@dataclasses.dataclass(frozen=True)
class Runs:
    """One setting's groupings of the whole dev file: all at once, and as the daemon runs it."""

    at_once: dict[str, str]
    daemon: list[dict[str, str]]


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Scores of one setting on some stories' items, in both modes."""

    at_once: Scores
    at_once_pairs: Scores
    daemon: Scores
    daemon_pairs: Scores

    @property
    def f1(self) -> float:
        return (self.at_once.f1 + self.daemon.f1) / 2


def runs_of(module: ModuleType, labelled: list[LabelledItem], settings: GroupingSettings) -> Runs:
    return Runs(
        module.assign_stories([e.item for e in labelled], settings=settings).stories,
        [
            streamed(labelled, DAEMON_BATCH, settings, seed, module)
            for seed in range(DAEMON_SHUFFLES)
        ],
    )


def scored_on(runs: Runs, truth: dict[str, str], ids: set[str]) -> HeldOut:
    return HeldOut(
        bcubed(runs.at_once, truth, ids),
        pairwise(runs.at_once, truth, ids),
        mean_of([bcubed(run, truth, ids) for run in runs.daemon]),
        mean_of([pairwise(run, truth, ids) for run in runs.daemon]),
    )


def mean_of(scores: list[Scores]) -> Scores:
    return Scores(
        float(np.mean([score.precision for score in scores])),
        float(np.mean([score.recall for score in scores])),
    )


def sparse_precision(
    module: ModuleType, days: list[list[LabelledItem]], settings: GroupingSettings
) -> float:
    return float(
        np.mean(
            [
                bcubed(
                    module.assign_stories([e.item for e in day], settings=settings).stories,
                    truth_of(day),
                ).precision
                for day in days
            ]
        )
    )


def cv_report(
    name: str,
    module: ModuleType,
    axes: dict[str, tuple[float, ...]],
    labelled: list[LabelledItem],
) -> GroupingSettings:
    """Nested 4-fold cross-validation by story.

    Every setting groups the whole dev file (all at once, and in daemon batches), so held-out
    stories are grouped among all the others, as they would be on a real day; a fold's
    held-out figure scores only its stories' items (their groups still count every item).
    Each fold is scored with the setting whose figure on the other folds' items was best:
    their labels chose it, the held-out labels never did. Returns the setting with the best
    mean held-out F1 (both modes) among those that keep sparse-day precision at the goal.
    """
    started = time.perf_counter()
    truth = truth_of(labelled)
    folds = [{e.item.item_id for e in fold} for fold in story_folds(labelled)]
    grid = grid_settings(module, axes)
    reuse_features(module, axes)
    sparse_days = small_sparse_days(labelled, days=50)
    held: list[list[HeldOut]] = []
    trained: list[list[float]] = []
    precision: list[float] = []
    print(
        f"\n{name}: {FOLDS}-fold cross-validation by story (held-out items per fold: "
        f"{' '.join(str(len(f)) for f in folds)}); daemon = batches of {DAEMON_BATCH} with "
        f"earlier items as anchors, mean of {DAEMON_SHUFFLES} shuffles"
    )
    print(f"  {'setting':<56} held-out BCubed F1: all at once / daemon   sparse-day P")
    for settings in grid:
        runs = runs_of(module, labelled, settings)
        held.append([scored_on(runs, truth, fold) for fold in folds])
        trained.append([scored_on(runs, truth, set(truth) - fold).f1 for fold in folds])
        precision.append(sparse_precision(module, sparse_days, settings))
        rows = held[-1]
        print(
            f"  {describe(settings, axes):<56} {np.mean([r.at_once.f1 for r in rows]):.3f} / "
            f"{np.mean([r.daemon.f1 for r in rows]):.3f}                  {precision[-1]:.3f}",
            flush=True,
        )
    chosen = [
        max(range(len(grid)), key=lambda index: (trained[index][fold], -index))
        for fold in range(FOLDS)
    ]
    picked = [held[index][fold] for fold, index in enumerate(chosen)]
    print(
        "  chosen on the other folds: "
        + "; ".join(
            f"fold {fold}: {describe(grid[index], axes)}" for fold, index in enumerate(chosen)
        )
    )
    for mode, bc, pw in (
        ("all at once", [r.at_once for r in picked], [r.at_once_pairs for r in picked]),
        ("daemon", [r.daemon for r in picked], [r.daemon_pairs for r in picked]),
    ):
        print(
            f"  CROSS-VALIDATED {mode:<12} BCubed {mean_of(bc)} (F1 per fold "
            f"{' '.join(f'{score.f1:.3f}' for score in bc)})   pairwise {mean_of(pw)}"
        )
    eligible = [i for i, p in enumerate(precision) if p >= SPARSE_PRECISION_GOAL]
    best = max(
        eligible or range(len(grid)),
        key=lambda index: (np.mean([r.f1 for r in held[index]]), -index),
    )
    print(
        f"  best by the cross-validated figure: {describe(grid[best], axes)} "
        f"({time.perf_counter() - started:.0f}s, load average {load_average()})"
    )
    return grid[best]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def module_at(revision: str) -> ModuleType:
    """digests/group.py as it was at a git revision, imported under its own name."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:digests/group.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "group_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("group_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["group_before"] = module
    spec.loader.exec_module(module)
    return module


def quality_report(sections: list[str], before: str) -> None:
    labelled = load_uci()
    if "cv" in sections:
        if before:
            cv_report(
                f"before (digests/group.py at {before})", module_at(before), GRID_BEFORE, labelled
            )
        cv_report("shipped", group, GRID, labelled)
    if "dev" in sections:
        dev_report(labelled, module_at(before) if before else None)
    if "small" in sections:
        small_report(labelled, module_at(before) if before else None)
    if "texts" in sections:
        texts_report(labelled, module_at(before) if before else None)


def dev_report(labelled: list[LabelledItem], before: ModuleType | None) -> None:
    """Every figure on the whole dev file, the data the defaults were chosen on."""
    truth = truth_of(labelled)
    print(f"UCI headlines: {len(labelled)} items, {len(set(truth.values()))} stories ({UCI_PATH})")
    singletons = {item_id: item_id for item_id in truth}
    print(row("singletons", bcubed(singletons, truth), pairwise(singletons, truth)))
    started = time.perf_counter()
    baseline, cut = plain_tfidf_average_linkage(labelled)
    took = time.perf_counter() - started
    print(
        row(
            "plain TF-IDF average linkage",
            bcubed(baseline, truth),
            pairwise(baseline, truth),
            f"(best cut {cut:.2f} chosen on this data, {took:.1f}s)",
        )
    )
    for name, module, settings in variants(before):
        started = time.perf_counter()
        predicted = module.assign_stories(
            [entry.item for entry in labelled], settings=settings
        ).stories
        took = time.perf_counter() - started
        print(
            row(
                name,
                bcubed(predicted, truth),
                pairwise(predicted, truth),
                f"({len(set(predicted.values()))} groups, {took:.2f}s)",
            )
        )
    print("\nas the daemon runs it: whole file in shuffled batches, earlier items as anchors")
    for name, module, settings in variants(before)[: 2 if before else 1]:
        streamed_report(name, module, labelled, settings)


def variants(before: ModuleType | None) -> list[tuple[str, ModuleType, GroupingSettings]]:
    """The shipped grouping, its ablations, and the code before when it is loaded."""
    found = [
        ("assign_stories (shipped)", group, GroupingSettings()),
        ("shipped without meaning vectors", group, GroupingSettings(dense_weight=0)),
        ("shipped, batch-only IDF", group, GroupingSettings(background_documents=0)),
    ]
    if before is not None:
        found.insert(0, ("before", before, before.GroupingSettings()))
    return found


def small_report(labelled: list[LabelledItem], before: ModuleType | None) -> None:
    sparse_days = small_sparse_days(labelled, days=50)
    tiny = tiny_batches(labelled, batches=300)
    print("\nsmall batches (BCubed, mean over batches; streamed = whole file, scored once)")
    for name, module, settings in variants(before):
        precisions = [
            bcubed(
                module.assign_stories([e.item for e in day], settings=settings).stories,
                truth_of(day),
            ).precision
            for day in sparse_days
        ]
        print(f"{name}:")
        print(
            f"  sparse days (50 x 30 stories x 1-3 items): precision mean "
            f"{np.mean(precisions):.3f}, worst day {min(precisions):.3f}"
        )
        print(f"  tiny batches (300 x 2 stories x 2 items):  {mean_scores(tiny, module, settings)}")


def texts_report(labelled: list[LabelledItem], before: ModuleType | None) -> None:
    """The same headlines with 150-200-word texts (story words, common English, and boilerplate
    that half the sources and a fifth of all items carry), against texts without boilerplate."""
    print(
        f"\nwith texts (tests/bench/synthetic.py with_texts; BCubed; daemon = batches of "
        f"{DAEMON_BATCH}, {DAEMON_SHUFFLES} shuffles)"
    )
    settings_variants = [
        ("shipped", group, GroupingSettings()),
        ("shipped, reading 1,500 characters", group, GroupingSettings(text_max_chars=1500)),
    ]
    if before is not None:
        settings_variants.insert(0, ("before", before, before.GroupingSettings()))
    for name, variant in (
        ("texts with boilerplate", with_texts(labelled)),
        ("texts without boilerplate", with_texts(labelled, boilerplate=False)),
    ):
        truth = truth_of(variant)
        for grouping, module, settings in settings_variants:
            started = time.perf_counter()
            whole = bcubed(
                module.assign_stories([e.item for e in variant], settings=settings).stories,
                truth,
            )
            took = time.perf_counter() - started
            precisions = [
                bcubed(
                    module.assign_stories([e.item for e in day], settings=settings).stories,
                    truth_of(day),
                ).precision
                for day in small_sparse_days(variant, days=50)
            ]
            # The daemon passes cost most; they run for the shipped settings only.
            daemon = (
                mean_of(
                    [
                        bcubed(streamed(variant, DAEMON_BATCH, settings, seed, module), truth)
                        for seed in range(DAEMON_SHUFFLES)
                    ]
                )
                if grouping == "shipped"
                else ""
            )
            print(
                f"  {name:<26} {grouping:<34} all at once {whole} ({took:.1f}s)  daemon: "
                f"{str(daemon) if daemon else '-':<28}  sparse days: precision mean "
                f"{np.mean(precisions):.3f}, worst {min(precisions):.3f}"
            )


def streamed_report(
    name: str, module: ModuleType, labelled: list[LabelledItem], settings: GroupingSettings
) -> None:
    """The grouping step as the daemon runs it: the file arrives in batches, each grouped with
    all earlier items as anchors, in batches of 50 (as the README's earlier figures). Two
    shuffles, since the order matters."""
    truth = truth_of(labelled)
    for batch in (50,):
        started = time.perf_counter()
        scores = [
            bcubed(streamed(labelled, batch, settings, seed, module), truth)
            for seed in range(DAEMON_SHUFFLES)
        ]
        took = (time.perf_counter() - started) / len(scores)
        print(
            f"  {name:<34} {f'batches of {batch:,}':<16} mean {mean_of(scores)}  "
            f"F1 per shuffle {' '.join(f'{score.f1:.3f}' for score in scores)}  "
            f"({took:.1f}s per pass, load average {load_average()})"
        )


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss can carry the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale_child(size: int, texts: bool, lexical_only: bool) -> None:
    """Runs in a subprocess: group one synthetic day and print timings as JSON."""
    day = synthetic_day(load_uci(), size, seed=1)
    if texts:
        day = with_texts(day, seed=1)
    items = [entry.item for entry in day]
    settings = GroupingSettings(dense_weight=0) if lexical_only else GroupingSettings()
    before = peak_rss_mb()
    started = time.perf_counter()
    predicted = assign_stories(items, settings=settings).stories
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    # A second, traced run measures what grouping itself allocates (numpy included).
    tracemalloc.start()
    assign_stories(items, settings=settings)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # One collection run as the daemon makes it: 50 new items, everything else as anchors.
    anchors = [(item, predicted[item.item_id]) for item in items[50:]]
    started = time.perf_counter()
    assign_stories(items[:50], anchors, settings=settings)
    incremental_seconds = time.perf_counter() - started
    truth = truth_of(day)
    print(
        json.dumps(
            {
                "size": size,
                "incremental_seconds": incremental_seconds,
                "seconds": seconds,
                "peak_mb": peak,
                "before_mb": before,
                "traced_mb": traced_peak / 2**20,
                "bcubed_f1": bcubed(predicted, truth).f1,
                "pairwise_f1": pairwise(predicted, truth).f1,
                "stories": len(set(truth.values())),
                "groups": len(set(predicted.values())),
            }
        )
    )


def scale_report(sizes: list[int], texts: bool, lexical_only: bool = False) -> None:
    kind = "with 150-200-word texts" if texts else "headlines only"
    kind += ", without meaning vectors (dense_weight=0)" if lexical_only else ""
    print(
        f"\nscale (synthetic days from UCI headlines, {kind}; "
        "peak = whole process VmHWM, allocated = tracemalloc peak of assign_stories alone)"
    )
    for size in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--scale-child", str(size)]
            + (["--texts"] if texts else [])
            + (["--lexical-only"] if lexical_only else []),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(output)
        print(
            f"{r['size']:>7,} items  {r['seconds']:6.2f}s  (load average {load_average()})  "
            f"(50 new + {r['size'] - 50:,} anchors {r['incremental_seconds']:.2f}s)  "
            f"peak {r['peak_mb']:4.0f} MB "
            f"(before grouping {r['before_mb']:.0f} MB, allocated {r['traced_mb']:.0f} MB)  "
            f"{r['stories']:,} true stories, "
            f"{r['groups']:,} groups, BCubed F1 {r['bcubed_f1']:.3f}, "
            f"pairwise F1 {r['pairwise_f1']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--texts", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lexical-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--before", default=BEFORE, help="git revision of the code before ('' to skip it)"
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()
    if not UCI_PATH.is_file():
        sys.exit(f"UCI data not found at {UCI_PATH}")
    if args.scale_child:
        scale_child(args.scale_child, args.texts, args.lexical_only)
        return
    quality_report(args.sections, args.before)
    if "scale" in args.sections:
        scale_report(args.sizes, texts=False)
        scale_report(args.sizes, texts=False, lexical_only=True)
        scale_report(args.sizes, texts=True)


if __name__ == "__main__":
    main()
