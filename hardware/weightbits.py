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
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightBits:
    bits: int  # mantissa bits per weight (without the sign bit of mixed-sign layers)
    signed: bool  # mixed signs: one more bit per weight on the synapse
    basis: str


def _flat(weight) -> np.ndarray:
    """All stored weight values (zeros included: they are integers at every scale) as a flat array."""
    data = weight.data if hasattr(weight, "tocsr") else np.asarray(weight)
    return data.reshape(-1)


def _sample_grid(values: np.ndarray) -> tuple[int, int] | None:
    """(k, t) from a sample of the non-zero values: the smallest k in 0..8 with every value * 2**k an integer
    (SLAYER stores weights as int / 64), and t, the low zero bits common to those integers (capped at 8)."""
    sample = values[:: max(1, values.size // _SAMPLE)].astype(np.float64)
    sample = sample[sample != 0]
    if sample.size == 0:
        return 0, 0
    for k in range(MAX_BITS + 1):
        scaled = sample * (1 << k)
        if np.all(np.mod(scaled, 1.0) == 0):
            merged = int(np.bitwise_or.reduce(np.abs(scaled).astype(np.int64)))
            return k, min((merged & -merged).bit_length() - 1, MAX_BITS)
    return None


def _integral(values: np.ndarray, exponent: int) -> bool:
    """Whether every value * 2**exponent is an integer (chunked, a few vectorised passes)."""
    if np.issubdtype(values.dtype, np.integer):
        return exponent >= 0 or not np.any(values & ((1 << -exponent) - 1))
    factor = values.dtype.type(2.0**exponent)
    for start in range(0, values.size, _CHUNK):
        scaled = values[start:start + _CHUNK] * factor
        if not np.array_equal(np.floor(scaled), scaled):
            return False
    return True


def _scan(values: np.ndarray, k: int) -> tuple[int, int, int] | None:
    """Exact (min, max, OR) of the integers values * 2**k, or None if one is not an integer (slow path)."""
    scaled = values.astype(np.float64) * (1 << k)
    if not np.array_equal(np.floor(scaled), scaled) or np.abs(scaled).max(initial=0) >= 2**62:
        return None
    ints = scaled.astype(np.int64)
    return int(ints.min()), int(ints.max()), int(np.bitwise_or.reduce(ints))


def _grid(values: np.ndarray) -> tuple[int, int, int, int] | None:
    """(min, max) integers, the scale k and the common low zero bits t of the weights, or None for floats."""
    grid = _sample_grid(values)
    if grid is None:
        return None
    k, t = grid
    lo, hi = float(values.min()), float(values.max())
    # The sample's t bounds the true t from above; one full check at scale 2**(k-t) makes it exact.
    if _integral(values, k - t):
        return int(round(lo * 2**k)), int(round(hi * 2**k)), k, t
    scan = _scan(values, k)
    if scan is None:
        return None
    bottom, top, merged = scan
    return bottom, top, k, min((merged & -merged).bit_length() - 1, MAX_BITS) if merged else 0


def weight_bits(weight) -> WeightBits:
    """Bits netx would give this weight tensor on Loihi (8 for float weights that export must quantise)."""
    values = _flat(weight)
    grid = _grid(values) if values.size else (0, 0, 0, 0)
    if grid is None:
        signed = bool(values.min() < 0 < values.max())
        return WeightBits(MAX_BITS, signed, "float weights: quantised to the 8-bit maximum at export")
    bottom, top, k, trailing = grid
    if bottom == 0 and top == 0:
        return WeightBits(0, False, "all weights are zero")
    mixed = bottom < 0 < top
    # Headroom: how many times the largest magnitude can double inside the 8-bit (or signed 8-bit) range.
    if mixed:
        scale = min(127 / top, -128 / bottom)
    elif top > 0:
        scale = 255 / top
    else:
        scale = -256 / bottom
    headroom = math.floor(math.log2(scale)) + int(mixed)
    bits = MAX_BITS - headroom - (trailing - int(mixed))
    bits = int(min(max(bits, 1), MAX_BITS))
    return WeightBits(bits, mixed, f"netx rule: {'mixed' if mixed else 'single'}-sign integer weights "
                                   f"(range {bottom}..{top} at scale 2^{k})")
