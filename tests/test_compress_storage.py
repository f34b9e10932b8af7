"""Deep-Compression storage accounting: Huffman code lengths, relative indices, codebooks."""

from __future__ import annotations

from collections import Counter

import numpy as np

from edgedeploy.compress.storage import (
    deep_compression_size,
    encode_layer,
    huffman_bits,
    huffman_code_lengths,
)


def test_huffman_code_lengths_are_optimal() -> None:
    lengths = huffman_code_lengths(Counter({0: 8, 1: 4, 2: 2, 3: 1, 4: 1}))
    assert lengths == {0: 1, 1: 2, 2: 3, 3: 4, 4: 4}
    assert huffman_code_lengths(Counter({7: 5})) == {7: 1}
    payload, table = huffman_bits(np.array([0] * 8 + [1] * 4 + [2] * 2 + [3, 4]), symbol_bits=3)
    assert payload == 8 * 1 + 4 * 2 + 2 * 3 + 2 * 4 and table == 5 * (3 + 5)


def test_sparse_clustered_layer_uses_relative_index_and_codebook() -> None:
    rng = np.random.default_rng(0)
    w = np.zeros((100, 100), dtype=np.float32)
    positions = rng.choice(w.size, 500, replace=False)
    w.flat[positions] = rng.choice(np.array([-0.5, -0.1, 0.1, 0.5], dtype=np.float32), 500)
    layer = encode_layer("fc", w)
    assert layer.layout.startswith("sparse-") and layer.nonzeros == 500 and layer.codebook_size == 4
    assert layer.codebook_bits == 4 * 32
    # 500 entries (plus fillers) at about 2 bits of weight and a few bits of index: far below fp32.
    assert 500 * 4 // 8 < layer.bytes < 500 * 12 // 8
    dense = encode_layer("fc", rng.standard_normal((20, 20)).astype(np.float32))
    assert dense.layout == "dense" and dense.codebook_size == 0 and dense.weight_bits == 400 * 32


def test_fillers_bridge_long_gaps() -> None:
    w = np.zeros(1000, dtype=np.float32)
    w[[0, 999]] = 1.0
    layer = encode_layer("x", w)
    bits = int(layer.layout.split("-")[1].removesuffix("bit"))
    fillers = (999 - 1) // (1 << bits)
    assert layer.index_bits >= (2 + fillers) * 1  # every entry costs at least one Huffman bit


def test_report_totals_include_other_params() -> None:
    report = deep_compression_size({"a": np.ones((4, 4), dtype=np.float32)}, other_params=10)
    assert report.other_bytes == 40 and report.total_bytes == report.layers[0].bytes + 40
