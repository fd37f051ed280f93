"""Pickle reading without code execution: only plain containers and NumPy arrays may be rebuilt.

A pickle names the callables that rebuild its objects; ``pickle.load`` imports and calls whatever it names,
so a planted data file can run code. :func:`load` resolves only the few NumPy names an array needs and
refuses object arrays (their elements would be arbitrary pickled objects).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from snndeploy.errors import UserError

# (module, name) a pickled ndarray refers to; numpy 2 moved numpy.core to numpy._core.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _Refused(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise _Refused(f"refers to {module}.{name}, which a data file may not (only containers and "
                           f"NumPy arrays are read)")
        return super().find_class(module, name)


def _check_arrays(obj: Any, depth: int = 0) -> None:
    if depth > 32:
        raise _Refused("nests containers more than 32 deep")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise _Refused("holds an object array (only numeric arrays are read)")
    if isinstance(obj, dict):
        for value in obj.values():
            _check_arrays(value, depth + 1)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check_arrays(value, depth + 1)


def load(fh: BinaryIO | bytes, path: str | Path) -> Any:
    """Unpickle ``fh`` allowing only builtin containers and numeric NumPy arrays; anything else is a UserError."""
    stream = io.BytesIO(fh) if isinstance(fh, bytes) else fh
    try:
        data = RestrictedUnpickler(stream).load()
        _check_arrays(data)
    except _Refused as exc:
        raise UserError(f"unsafe pickle: {exc}", path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, MemoryError,
            RecursionError, UnicodeDecodeError, OverflowError) as exc:
        raise UserError(f"corrupt pickle ({type(exc).__name__}: {exc})", path) from None
    return data
