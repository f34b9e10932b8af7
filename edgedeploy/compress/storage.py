"""Storage accounting in the format of Deep Compression (Han et al. 2016, section 4 and 5).

Each weight layer is stored as:
- a sparse relative index: the gap to the previous non-zero, in `b` bits; a gap wider than 2**b is
  bridged by filler entries (a zero weight), b chosen per layer (2..8) for the smallest result;
- the weights as indices into a codebook of the layer's distinct non-zero values (32-bit floats),
  when there are at most 256 of them; otherwise as raw 32-bit floats;
- Huffman coding of both the index gaps and the codebook indices, with the code-length table counted.
A layer is stored dense (no index stream) when that is smaller. Biases and any other parameters stay
32-bit floats. The result is a computed size, not a file: `rate = fp32 bytes / this size`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MAX_CODEBOOK = 256
FLOAT_BITS = 32


@dataclass
class LayerStorage:
    name: str
    numel: int
    nonzeros: int
    layout: str
    """'sparse-<b>bit' (relative index) or 'dense'."""
    codebook_size: int
    """Distinct non-zero values held in the codebook; 0 when weights are stored raw."""
    index_bits: int
    """Huffman-coded relative-index stream."""
    weight_bits: int
    """Huffman-coded codebook indices (or raw floats)."""
    codebook_bits: int
    table_bits: int
    """Huffman code-length tables for both streams."""

    @property
    def bytes(self) -> int:
        return -(-(self.index_bits + self.weight_bits + self.codebook_bits + self.table_bits) // 8)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes": self.bytes}


@dataclass
class StorageReport:
    layers: list[LayerStorage]
    other_bytes: int
    """Biases and other parameters at 32 bits."""

    @property
    def total_bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers) + self.other_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "other_bytes": self.other_bytes,
            "layers": [layer.to_dict() for layer in self.layers],
        }


def huffman_code_lengths(counts: Counter[int]) -> dict[int, int]:
    """Code length per symbol of an optimal prefix code (a single symbol still needs 1 bit)."""
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    heap: list[tuple[int, int, list[int]]] = [(n, sym, [sym]) for sym, n in counts.items()]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    while len(heap) > 1:
        n1, tie1, syms1 = heapq.heappop(heap)
        n2, tie2, syms2 = heapq.heappop(heap)
        for sym in syms1 + syms2:
            lengths[sym] += 1
        heapq.heappush(heap, (n1 + n2, min(tie1, tie2), syms1 + syms2))
    return lengths


def huffman_bits(symbols: np.ndarray, symbol_bits: int) -> tuple[int, int]:
    """(payload bits, table bits) of Huffman-coding `symbols`; the canonical-code table stores one
    5-bit code length per used symbol plus the symbol itself."""
    if symbols.size == 0:
        return 0, 0
    values, freq = np.unique(symbols, return_counts=True)
    counts = Counter(dict(zip(values.tolist(), freq.tolist(), strict=True)))
    lengths = huffman_code_lengths(counts)
    payload = sum(counts[sym] * lengths[sym] for sym in counts)
    return payload, len(counts) * (symbol_bits + 5)


def encode_layer(name: str, weight: np.ndarray) -> LayerStorage:
    flat = np.ascontiguousarray(weight, dtype=np.float32).ravel()
    nonzero_pos = np.flatnonzero(flat)
    nonzero_values = flat[nonzero_pos]
    codebook = np.unique(nonzero_values)
    use_codebook = len(codebook) <= MAX_CODEBOOK
    zero_symbol = len(codebook)  # the filler / zero entry
    symbol_bits = max(1, int(np.ceil(np.log2(len(codebook) + 1))))
    codebook_bits = len(codebook) * FLOAT_BITS if use_codebook else 0

    def weight_stream(symbols: np.ndarray) -> tuple[int, int]:
        if use_codebook:
            return huffman_bits(symbols, symbol_bits)
        return symbols.size * FLOAT_BITS, 0

    # Dense: every position carries a weight symbol (zeros included).
    dense_symbols = np.full(flat.size, zero_symbol, dtype=np.int64)
    dense_symbols[nonzero_pos] = np.searchsorted(codebook, nonzero_values)
    weight_bits, table_bits = weight_stream(dense_symbols)
    best = LayerStorage(
        name,
        flat.size,
        len(nonzero_pos),
        "dense",
        len(codebook) if use_codebook else 0,
        0,
        weight_bits,
        codebook_bits,
        table_bits,
    )

    gaps = np.diff(np.concatenate([[-1], nonzero_pos]))
    codes = np.searchsorted(codebook, nonzero_values)
    for bits in range(2, 9):
        span = 1 << bits
        fillers = (gaps - 1) // span
        # Each entry stores (jump - 1) in `bits` bits: fillers jump `span`, the real entry the rest.
        last_jump = gaps - fillers * span
        n_fill = int(fillers.sum())
        index_symbols = np.concatenate([np.full(n_fill, span - 1, dtype=np.int64), last_jump - 1])
        weight_symbols = np.concatenate([np.full(n_fill, zero_symbol, dtype=np.int64), codes])
        index_bits, index_table = huffman_bits(index_symbols, bits)
        weight_bits, weight_table = weight_stream(weight_symbols)
        candidate = LayerStorage(
            name,
            flat.size,
            len(nonzero_pos),
            f"sparse-{bits}bit",
            len(codebook) if use_codebook else 0,
            index_bits,
            weight_bits,
            codebook_bits,
            index_table + weight_table,
        )
        if candidate.bytes < best.bytes:
            best = candidate
    return best


def deep_compression_size(weights: dict[str, np.ndarray], other_params: int) -> StorageReport:
    """Size of `weights` (layer name -> weight array) plus `other_params` 32-bit scalars."""
    return StorageReport(
        layers=[encode_layer(name, w) for name, w in weights.items()],
        other_bytes=other_params * FLOAT_BITS // 8,
    )


def model_storage(model: Any) -> StorageReport:
    """Deep-Compression size of a torch model: its Linear/Conv weights coded, everything else raw."""
    from edgedeploy.compress.layers import weight_layers

    layers = weight_layers(model)
    weights = {name: layer.weight.detach().cpu().numpy() for name, layer in layers.items()}
    coded = {id(layer.weight) for layer in layers.values()}
    others = sum(p.numel() for p in model.parameters() if id(p) not in coded)
    return deep_compression_size(weights, others)
