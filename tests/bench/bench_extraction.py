"""Article-extraction benchmark: sources.extract.extract_article on the 181 pages of the
scrapinghub article-extraction-benchmark, beside trafilatura with default settings and a
naive "all visible text" baseline.

    python tests/bench/bench_extraction.py              # the comparison table
    python tests/bench/bench_extraction.py --variants   # also trafilatura option variants
    python tests/bench/bench_extraction.py --worst 10   # also the weakest pages of ours
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests")]

import lxml.html  # noqa: E402
import trafilatura  # noqa: E402
from bench.extraction_scoring import Match, Page, dataset_dir, load_pages, match, score  # noqa: E402

from sources.extract import extract_article  # noqa: E402

Extractor = Callable[[Page], str]


def ours(page: Page) -> str:
    article = extract_article(page.html, page.url)
    return article.text if article else ""


def trafilatura_default(page: Page) -> str:
    return trafilatura.extract(page.html, url=page.url) or ""


_INVISIBLE = ("script", "style", "noscript", "template", "head", "svg")


def visible_text(page: Page) -> str:
    root = lxml.html.document_fromstring(page.html)
    for element in list(root.iter(*_INVISIBLE)):
        element.drop_tree()
    return " ".join(root.text_content().split())


def trafilatura_with(**options: bool) -> Extractor:
    def run(page: Page) -> str:
        return trafilatura.extract(page.html, url=page.url, **options) or ""

    return run


# The option sets compared when choosing extract_article's settings.
VARIANTS: dict[str, Extractor] = {
    "no comments": trafilatura_with(include_comments=False),
    "no comments, fast": trafilatura_with(include_comments=False, fast=True),
    "no comments, recall": trafilatura_with(include_comments=False, favor_recall=True),
    "no comments, precision": trafilatura_with(include_comments=False, favor_precision=True),
    "no comments, precision, no tables": trafilatura_with(
        include_comments=False, favor_precision=True, include_tables=False
    ),
    "no comments, precision, fast": trafilatura_with(
        include_comments=False, favor_precision=True, fast=True
    ),
    "baseline() only": lambda page: trafilatura.baseline(page.html)[1],
}


def run(name: str, extractor: Extractor, pages: list[Page]) -> list[Match]:
    extractor(pages[0])  # warm-up: imports and caches stay out of the timing
    matches = []
    empty = 0
    started = time.perf_counter()
    for page in pages:
        text = extractor(page)
        empty += not text.strip()
        matches.append(match(page.body, text))
    per_page_ms = (time.perf_counter() - started) / len(pages) * 1000
    s = score(matches)
    print(
        f"{name:<46} {s.precision:9.3f} {s.recall:6.3f} {s.f1:6.3f} {s.mean_page_f1:10.3f}"
        f" {empty:6d} {per_page_ms:9.1f}"
    )
    return matches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", action="store_true", help="also trafilatura option sets")
    parser.add_argument("--worst", type=int, default=0, help="list our N weakest pages")
    args = parser.parse_args()

    directory = dataset_dir()
    if directory is None:
        print("benchmark data not found (expected shared/data/extraction/scrapinghub)")
        return 1
    pages = list(load_pages(directory))
    print(f"{len(pages)} pages from {directory}; 4-word shingles, benchmark conventions\n")
    print(f"{'extractor':<46} precision recall     F1 page-F1 empty ms/page")
    matches = run("extract_article (ours)", ours, pages)
    run("trafilatura, default settings", trafilatura_default, pages)
    run("all visible text", visible_text, pages)
    if args.variants:
        print()
        for name, extractor in VARIANTS.items():
            run(f"trafilatura: {name}", extractor, pages)
    if args.worst:
        print("\nweakest pages of ours (F1, precision, recall, url):")
        ranked = sorted(zip(matches, pages, strict=True), key=lambda pair: pair[0].f1)
        for m, page in ranked[: args.worst]:
            print(f"  {m.f1:.2f} {m.precision:.2f} {m.recall:.2f} {page.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
