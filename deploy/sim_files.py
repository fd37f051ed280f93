"""The array layout of ``snndeploy simulate --input X.npy --out DIR``: lava-dl's golden layout.

Lava processes hold images as ``(x, y, c)`` = ``(W, H, C)`` and a ``RingBuffer`` source or sink holds
``(*shape, T)``, time last; lava-dl's goldens (``tests/lava/lib/dl/netx/gts/``) are stored that way. The IR and
SLAYER use ``(C, H, W)``. ``simulate`` reads and writes the Lava layout:

* ``X`` of shape ``(*S, T)``: one sample of input spikes, ``S`` the network input in Lava order (``(F,)`` for a
  vector input, ``(W, H, C)`` for an image); ``(N, *S, T)``: N samples back to back.
* ``X`` of shape ``S`` (no time axis), or ``(N, *S)``, for a network whose first layer is a netx ``input`` layer
  (bias-driven neurons): the input layer's bias mantissa (Loihi units, exponent 6) held for the whole sample,
  lava-dl's convention for an image (``gts/pilotnet_lif/image.npy``, ``test_hdf5_nx.py``).
* An array in the IR's ``(C, H, W)`` order is accepted where it cannot be read as ``(W, H, C)``; the summary
  says which layout was read.

Outputs: ``DIR/output.npy`` is the output layer's spikes as a ``RingBuffer`` sink holds them, ``(*S_out, T)``
(``(N, *S_out, T)`` for a batch); ``DIR/layers.npz`` (``--record all``) holds for every layer ``i`` (network
order, ``names[i]`` its name) ``spikes_<i>`` in the same layout and, in fixed_pt, ``u_<i>`` and ``v_<i>``: the
neuron's current and voltage read after every step (Loihi integers), also ``(*S_i, T)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snndeploy.errors import UserError

LAVA_LAYOUT = "lava (x, y, c), time last"
IR_LAYOUT = "c, h, w, time last"


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Lava's order of an IR shape: ``(C, H, W)`` -> ``(W, H, C)``; vectors unchanged."""
    return tuple(shape[::-1]) if len(shape) == 3 else tuple(shape)


def to_ir(x: np.ndarray, spatial: int) -> np.ndarray:
    """Lava layout -> IR layout for arrays ``(N, *S[, T])`` with ``spatial`` = len(S) (3: reverse the image axes)."""
    if spatial != 3:
        return x
    order = [0, 3, 2, 1] + list(range(4, x.ndim))
    return x.transpose(order)


def to_lava(x: np.ndarray, spatial: int) -> np.ndarray:
    """IR layout -> Lava layout, the inverse of :func:`to_ir` (the axis swap is its own inverse)."""
    return to_ir(x, spatial)


@dataclass(frozen=True)
class InputArray:
    """An input file read: spikes ``(N, *shape, T)`` or a static bias ``(N, *shape)`` (IR order), and how it
    was laid out."""

    spikes: np.ndarray | None
    bias: np.ndarray | None
    layout: str
    batched: bool


def _match(x: np.ndarray, shape: tuple[int, ...]) -> tuple[bool, bool] | None:
    """(batched, has_time) if ``x`` is ``[N,] *shape [, T]``, preferring one sample with time."""
    n = len(shape)
    candidates = ((False, True, x.ndim == n + 1 and x.shape[:n] == shape),
                  (True, True, x.ndim == n + 2 and x.shape[1:n + 1] == shape),
                  (False, False, x.ndim == n and x.shape == shape),
                  (True, False, x.ndim == n + 1 and x.shape[1:] == shape))
    return next(((batched, timed) for batched, timed, ok in candidates if ok), None)


def read_input_array(x: np.ndarray, shape: tuple[int, ...], *, bias_input: bool,
                     path: Path | None = None) -> InputArray:
    """Interpret ``x`` against the network input ``shape`` (IR order); see the module docstring."""
    shape = tuple(shape)
    layouts = [(LAVA_LAYOUT, lava_shape(shape))] + ([(IR_LAYOUT, shape)] if len(shape) == 3 else [])
    for layout, expected in layouts:
        found = _match(np.asarray(x), expected)
        if found is None:
            continue
        batched, timed = found
        arr = np.asarray(x) if batched else np.asarray(x)[None]
        if layout == LAVA_LAYOUT:
            arr = to_ir(arr, len(shape))
        if timed:
            return InputArray(arr, None, layout, batched)
        if not bias_input:
            raise UserError(f"input of shape {tuple(x.shape)} has no time axis, which only a network whose first "
                            "layer is a bias-driven input layer takes (as that layer's bias)", path)
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise UserError("an input bias must be finite numbers", path)
        return InputArray(None, arr.astype(np.float64), layout, batched)
    raise UserError(f"input of shape {tuple(np.shape(x))} does not fit the network input: expected (*S, T) or "
                    f"(N, *S, T) with S = {lava_shape(shape)} (Lava's x, y, c order"
                    f"{'; or ' + str(shape) + ' as c, h, w' if len(shape) == 3 else ''})"
                    + ("; or S alone for the input layer's bias" if bias_input else ""), path)


def golden(x: np.ndarray, batched: bool) -> np.ndarray:
    """Per-sample arrays ``(N, *shape, T)`` in IR order -> the golden layout (no N for an unbatched input)."""
    out = to_lava(np.asarray(x), np.asarray(x).ndim - 2)
    return out if batched else out[0]


def layers_arrays(names: list[str], spikes: dict[int, np.ndarray], states: dict[int, dict[str, np.ndarray]],
                  batched: bool) -> dict[str, np.ndarray]:
    """The contents of ``layers.npz``: ``names``, ``spikes_<i>`` and (where recorded) ``u_<i>``, ``v_<i>``."""
    out: dict[str, np.ndarray] = {"names": np.array(names)}
    for i in sorted(spikes):
        out[f"spikes_{i}"] = golden(spikes[i], batched)
    for i in sorted(states):
        for key in ("u", "v"):
            if key in states[i]:
                out[f"{key}_{i}"] = golden(states[i][key], batched)
    return out
