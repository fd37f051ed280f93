"""Weight bits a layer needs on Loihi: the fewest mantissa bits that hold its weights exactly (netx rule).

lava-dl netx (``optimize_weight_bits``) stores each layer's integer weights as a signed or unsigned
mantissa of at most 8 bits plus one shared power-of-two exponent; pruning and quantisation lower the
bits only if they narrow the weight range or coarsen its grid. This module re-derives that count from
the weights without reading them more than a few times (it must stay fast at 1e8 synapses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_BITS = 8
_SAMPLE = 4096


@dataclass(frozen=True)
class WeightBits:
    bits: int  # mantissa bits per weight (without the sign bit of mixed-sign layers)
    signed: bool  # mixed signs: one more bit per weight on the synapse
    basis: str


def _values(weight) -> np.ndarray:
    """The non-zero weight values of a dense array or a scipy.sparse matrix, as a flat array."""
    data = weight.data if hasattr(weight, "tocsr") else np.asarray(weight).ravel()
    return data[data != 0] if data.size else data


def _integer_scale(values: np.ndarray) -> int | None:
    """Smallest k in 0..8 with every value * 2**k an integer (SLAYER stores weights as int / 64)."""
    sample = values[:: max(1, values.size // _SAMPLE)].astype(np.float64)
    for k in range(MAX_BITS + 1):
        if np.all(np.mod(sample * (1 << k), 1.0) == 0):
            scaled = values.astype(np.float64) * (1 << k)
            if np.all(np.mod(scaled, 1.0) == 0):
                return k
    return None


def weight_bits(weight) -> WeightBits:
    """Bits netx would give this weight tensor on Loihi (8 for float weights that export must quantise)."""
    values = _values(weight)
    if values.size == 0:
        return WeightBits(0, False, "all weights are zero")
    k = _integer_scale(values)
    if k is None:
        return WeightBits(MAX_BITS, bool(values.min() < 0 < values.max()),
                          "float weights: quantised to the 8-bit maximum at export")
    ints = np.rint(values.astype(np.float64) * (1 << k)).astype(np.int64)
    top, bottom = int(ints.max()), int(ints.min())
    mixed = bottom < 0 < top
    # Headroom: how many times the largest magnitude can double inside the 8-bit (or signed 8-bit) range.
    if mixed:
        scale = min(127 / top, -128 / bottom)
    elif top > 0:
        scale = 255 / top
    else:
        scale = -256 / bottom
    headroom = math.floor(math.log2(scale)) + int(mixed)
    # Grid: how many low bits are zero in every weight (capped at 8, as netx checks 8 down to 1).
    merged = int(np.bitwise_or.reduce(np.abs(ints)))
    trailing = min((merged & -merged).bit_length() - 1, MAX_BITS) if merged else 0
    bits = MAX_BITS - headroom - (trailing - int(mixed))
    bits = int(min(max(bits, 1), MAX_BITS))
    return WeightBits(bits, mixed, f"netx rule: {'mixed' if mixed else 'single'}-sign integer weights "
                                   f"(range {bottom}..{top} at scale 2^{k})")
