"""Meaning vectors are WordLlama's, computed from the wheel's files without its loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wordllama
from bench.uci import load_uci

from digests.meaning import DIMENSIONS, embed


def test_vectors_are_wordllamas_own_and_empty_texts_are_zero() -> None:
    texts = [
        "",
        "   ",  # spaces are tokens of their own
        "Regulators open an inquiry into cloud outage",
        "Beyonc&#233; &amp; Jay-Z — 2014 tour ✓ 日本語 …",
        *(labelled.item.title for labelled in load_uci()[:500]),
    ]
    model = wordllama.WordLlama.load(
        cache_dir=Path(wordllama.__file__).parent, disable_download=True
    )
    with np.errstate(invalid="ignore"):  # its zero-token rows divide 0 by 0
        expected = np.nan_to_num(model.embed(texts, norm=True))

    vectors = embed(texts)

    assert vectors.shape == (len(texts), DIMENSIONS) and vectors.dtype == np.float32
    assert np.abs(vectors - expected).max() < 1e-6
    assert not vectors[0].any()
    assert np.allclose(np.linalg.norm(vectors[1:], axis=1), 1.0, atol=1e-5)
    # One text at a time gives the same vector as in a batch.
    assert np.abs(embed(texts[3:4]) - vectors[3:4]).max() < 1e-6
