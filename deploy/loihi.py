"""Loihi's number formats, and whether Intel's Loihi 2 support (lava-loihi, INRC members only) is importable here."""

from __future__ import annotations

import importlib.util

W_SCALE = 64  # SLAYER weight/threshold scale (1 << 6)
DECAY_UNITY = 4096  # Loihi 12-bit decay unity
MAX_VTH_MANT = (1 << 17) - 1  # Loihi's largest threshold mantissa: a neuron that never spikes

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
