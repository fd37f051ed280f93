"""Sparsity schedules: the target sparsity after each pruning step."""

from __future__ import annotations

import math

SCHEDULES = ("one_shot", "cubic", "linear", "iterative")


def one_shot(final: float) -> list[float]:
    return [final]


def cubic(final: float, steps: int, initial: float = 0.0) -> list[float]:
    """Zhu & Gupta (2017): ``s_k = s_f + (s_i - s_f) * (1 - k/n)^3`` for k = 1..n."""
    return [final + (initial - final) * (1.0 - k / steps) ** 3 for k in range(1, steps + 1)]


def linear(final: float, steps: int, initial: float = 0.0) -> list[float]:
    return [initial + (final - initial) * k / steps for k in range(1, steps + 1)]


def iterative(final: float, rate: float = 0.2, initial: float = 0.0) -> list[float]:
    """IMP-style: remove ``rate`` of the remaining weights per step until ``final`` is reached (last step clipped)."""
    if not 0.0 < rate < 1.0:
        raise ValueError("rate must be in (0, 1)")
    remaining = 1.0 - initial
    steps = max(1, math.ceil(math.log((1.0 - final) / remaining) / math.log(1.0 - rate) - 1e-9))
    targets = [1.0 - remaining * (1.0 - rate) ** k for k in range(1, steps + 1)]
    targets[-1] = final
    return targets


def make(kind: str, final: float, steps: int = 1, rate: float = 0.2, initial: float = 0.0) -> list[float]:
    """Targets for a schedule named ``kind`` (one of :data:`SCHEDULES`)."""
    if not 0.0 <= final < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {final}")
    if kind == "one_shot":
        return one_shot(final)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if kind == "cubic":
        return cubic(final, steps, initial)
    if kind == "linear":
        return linear(final, steps, initial)
    if kind == "iterative":
        return iterative(final, rate, initial)
    raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
