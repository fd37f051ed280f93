"""Whether Intel's Loihi 2 support (lava-loihi, distributed to INRC members only) is importable here."""

from __future__ import annotations

import importlib.util

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
