"""Loihi's number formats, and whether Intel's Loihi 2 support (lava-loihi, INRC members only) is importable here."""

from __future__ import annotations

import importlib.util

W_SCALE = 64  # SLAYER weight/threshold scale (1 << 6)
DECAY_UNITY = 4096  # Loihi 12-bit decay unity
MAX_VTH_MANT = (1 << 17) - 1  # Loihi's largest threshold mantissa: a neuron that never spikes
# netx's neuron for a layer its file gives none (lava-dl netx hdf5.py, a dense read-out such as SLAYER's `Affine`):
# the current integrates without leak and the voltage equals it (iDecay 0, vDecay 4096), never spiking.
NETX_READOUT_DECAYS = (0, DECAY_UNITY)

# lava-nc itself imports this module to decide whether the Loihi 2 compiler exists (lava/magma/compiler).
LOIHI_COMPILER_MODULE = "lava.magma.compiler.subcompilers.nc.ncproc_compiler"


def lava_loihi_available() -> tuple[bool, str]:
    """(available, explanation)."""
    try:
        found = importlib.util.find_spec(LOIHI_COMPILER_MODULE) is not None
    except (ModuleNotFoundError, ValueError):
        found = False
    if found:
        return True, f"lava-loihi found ({LOIHI_COMPILER_MODULE})"
    return False, ("lava-loihi is not installed (it is distributed to Intel INRC members only); "
                   "Loihi 2 runs need an INRC system")
