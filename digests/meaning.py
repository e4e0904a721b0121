"""Meaning vectors: WordLlama's static embeddings, shared by story grouping and focus.

The 256-dimensional model ships inside the `wordllama` wheel (16 MB): a token table and a
tokenizer, read from there, so no network, ever. A text's vector is the mean of its tokens'
rows, unit length: what `WordLlama.embed(texts, norm=True)` computes, to float precision.

Computed here from the wheel's two files rather than through `WordLlama.load`, which costs a
grouping process about 100 MB: it imports the library's training and download code (29 MB),
copies the float16 table to float32 (33 MB), and pads each batch to its longest text. Here
the table is the wheel's file mapped read-only, as shipped: a process holds only the pages of
the tokens it meets, shared with every other process that reads them. Ten thousand headlines
embed in about a second on one core.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DIMENSIONS = 256
# The wheel's files for its default model, l2_supercat at 256 dimensions.
_WEIGHTS = Path("weights") / "l2_supercat_256.safetensors"
_TOKENIZER = Path("tokenizers") / "l2_supercat_tokenizer_config.json"
# Texts embedded at a time: bounds the token rows gathered (a few MB for story texts).
_CHUNK = 128


@functools.cache
def _package() -> Path:
    # Found, not imported: importing wordllama is most of the memory this module saves.
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("wordllama is not installed")
    return Path(spec.origin).parent


@functools.cache
def _tokenizer() -> Tokenizer:
    # Imported on first use: the daemon, which embeds only when it builds a digest itself,
    # does not load it.
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_package() / _TOKENIZER))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    # The model has no pre-tokenizer, so its cache of words would keep whole texts (23 MB
    # for ten thousand headlines), and each text is met once a run.
    tokenizer.model._resize_cache(0)
    return tokenizer


@functools.cache
def _table() -> NDArray[np.float16]:
    """The token table, mapped from the wheel's safetensors file (an 8-byte little-endian
    header length, a JSON header, then the raw tensor). By hand because the safetensors
    library copies a tensor into memory, and mapping is the point."""
    path = _package() / _WEIGHTS
    with path.open("rb") as file:
        header_size = int.from_bytes(file.read(8), "little")
        entry = json.loads(file.read(header_size))["embedding.weight"]
    if entry["dtype"] != "F16" or entry["shape"][1] != DIMENSIONS:
        raise ValueError(f"{path}: expected a float16 table of {DIMENSIONS} columns, got {entry}")
    table: NDArray[np.float16] = np.memmap(
        path,
        dtype="<f2",
        mode="r",
        offset=8 + header_size + entry["data_offsets"][0],
        shape=tuple(entry["shape"]),
    )
    return table


def embed(texts: Sequence[str]) -> NDArray[np.float32]:
    """Unit vectors, one row per text (zeros for a text without tokens)."""
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    table, tokenizer = _table(), _tokenizer()
    for start in range(0, len(texts), _CHUNK):
        # One text at a time: the batch call's thread pool kept 20-50 MB in its threads'
        # heaps, and on two cores it was no faster.
        tokens = [
            tokenizer.encode(text, add_special_tokens=False).ids
            for text in texts[start : start + _CHUNK]
        ]
        counts = np.fromiter(map(len, tokens), np.int64, len(tokens))
        ids = np.fromiter(itertools.chain.from_iterable(tokens), np.int64, counts.sum())
        np.clip(ids, 0, len(table) - 1, out=ids)
        present = np.flatnonzero(counts)
        offsets = (np.cumsum(counts) - counts)[present]
        sums = np.add.reduceat(table[ids], offsets, axis=0, dtype=np.float32)
        means = sums / counts[present, None].astype(np.float32)
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        vectors[start + present] = np.divide(
            means, norms, out=np.zeros_like(means), where=norms > 0
        )
    return vectors
