"""Meaning vectors: WordLlama's static embeddings, shared by story grouping and focus.

The 256-dimensional model ships inside the `wordllama` wheel (16 MB) and is loaded from
there with downloads disabled: no network, ever. It embeds ten thousand headlines in
about a second on one core.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DIMENSIONS = 256


@functools.cache
def _model() -> Any:
    # Imported on first use: commands that never group or rank do not pay for it.
    import wordllama

    return wordllama.WordLlama.load(
        cache_dir=Path(wordllama.__file__).parent, disable_download=True
    )


def embed(texts: Sequence[str], batch_size: int = 256) -> NDArray[np.float32]:
    """Unit vectors, one row per text (zeros for an empty text)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _model().embed(list(texts), norm=True, batch_size=batch_size)
    return np.nan_to_num(np.asarray(vectors, dtype=np.float32))
