"""Make lava-nc 0.10.0 and lava-dl 0.6.0 importable on Python 3.11 without editing site-packages.

Two known incompatibilities (docs/stack.md, section 2, rows 4 and 5) are fixed by a meta-path finder
that only answers for two module names:

* ``lava.magma.compiler.var_model`` declares dataclass fields ``x: ByteEncoder = ByteEncoder()``.
  Python 3.11 rejects such unhashable defaults, so the module fails at import and nothing in Lava can
  compile. On Python >= 3.11 we compile the module from its own source after rewriting exactly those
  defaults to ``field(default_factory=ByteEncoder)``; line numbers stay the same and no ``.pyc`` is
  written. Where the pattern is absent (a fixed upstream) the module loads unchanged.
* ``lava.lib.dl.slayer`` imports ``object_detection`` eagerly, which needs torchvision, cv2 and PIL.
  There is no CPU build of torchvision matching our torch, so the sub-package becomes a placeholder
  whose attributes raise an ``AttributeError`` naming the cause; the real one is used when it imports.
  ``SNNDEPLOY_LAVA_OBD`` = ``auto`` (default) | ``stub`` (never try) | ``real`` (never interfere).

* ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls ``multiprocessing.set_start_method('fork')``
  at import, which raises "context has already been set" once anything has fixed the start method, even to
  ``fork`` itself (tqdm's progress-bar lock does, so an ``evaluate`` with a progress bar before the first Lava
  import broke it). While that module runs, asking for the method already in use is a no-op; asking for another
  one still raises, as Lava needs ``fork``.

Lava forks its worker processes, so they inherit the finder and the already-patched modules.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import multiprocessing
import os
import re
import sys
import types

VAR_MODEL = "lava.magma.compiler.var_model"
OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"
LAVA_MULTIPROCESSING = "lava.magma.runtime.message_infrastructure.multiprocessing"
# The lava-nc releases whose var_model.py carries the mutable ByteEncoder defaults (0.9.0 .. 0.10.0).
VAR_MODEL_AFFECTED = ("0.9.0", "0.10.0")

_BYTE_ENCODER_DEFAULT = re.compile(
    r"^(?P<field>[ \t]+\w+[ \t]*:[ \t]*ByteEncoder[ \t]*=[ \t]*)ByteEncoder\(\)[ \t]*$", re.MULTILINE
)


@dataclasses.dataclass
class CompatStatus:
    """What the shims did in this interpreter (reported by ``snndeploy doctor``)."""

    installed: bool = False
    var_model_fix_needed: bool = False
    var_model_patched: int | None = None
    object_detection: str | None = None  # "real" | "placeholder" | None (not imported yet)
    object_detection_reason: str | None = None


STATUS = CompatStatus()


def rewrite_var_model(source: str) -> tuple[str, int]:
    """Return the source with every ``ByteEncoder()`` default made a default_factory, and the count."""
    return _BYTE_ENCODER_DEFAULT.subn(
        r"\g<field>__import__('dataclasses').field(default_factory=ByteEncoder)", source
    )


def var_model_fix_needed() -> bool:
    """Python 3.11 made unhashable dataclass defaults an error; older Pythons load the module as is."""
    return sys.version_info >= (3, 11)


class _RewritingLoader(importlib.machinery.SourceFileLoader):
    """Compiles the rewritten source; never reads or writes bytecode caches."""

    def get_code(self, fullname: str) -> types.CodeType:
        source = importlib.util.decode_source(self.get_data(self.path))
        patched, count = rewrite_var_model(source)
        STATUS.var_model_patched = count
        return compile(patched, self.path, "exec", dont_inherit=True)


class _OptionalLoader(importlib.abc.Loader):
    """Imports the real package; when that fails, leaves an explanatory placeholder instead."""

    def __init__(self, real: importlib.abc.Loader, mode: str):
        self._real = real
        self._mode = mode

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        if self._mode == "stub":
            _make_placeholder(module, "disabled by SNNDEPLOY_LAVA_OBD=stub")
            return
        before = set(sys.modules)
        try:
            self._real.exec_module(module)
        except (ImportError, RuntimeError, OSError, AttributeError) as exc:
            _forget_partial_imports(module.__name__, before)
            _make_placeholder(module, f"{type(exc).__name__}: {exc}")
            return
        STATUS.object_detection = "real"


class _SameStartMethodLoader(importlib.abc.Loader):
    """Runs the real module with ``set_start_method`` tolerating a request for the method already set."""

    def __init__(self, real: importlib.abc.Loader):
        self._real = real

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        original = multiprocessing.set_start_method

        def set_start_method(method, force=False):
            if force or multiprocessing.get_start_method(allow_none=True) != method:
                original(method, force=force)

        multiprocessing.set_start_method = set_start_method
        try:
            self._real.exec_module(module)
        finally:
            multiprocessing.set_start_method = original


def _forget_partial_imports(package: str, before: set[str]) -> None:
    # A failed `import torchvision` can leave torchvision.* sub-modules behind without their parent.
    for name in set(sys.modules) - before:
        if name.startswith(package + ".") or name.split(".")[0] not in sys.modules:
            sys.modules.pop(name, None)


def _make_placeholder(module: types.ModuleType, reason: str) -> None:
    for key in [k for k in vars(module) if not k.startswith("__")]:
        delattr(module, key)
    module.__path__ = []
    module.__all__ = []
    module.__doc__ = f"lava-dl object_detection is unavailable: {reason}"
    module.UNAVAILABLE_REASON = reason

    def __getattr__(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(
            f"{module.__name__}.{attr} is unavailable ({reason}); lava-dl's object detection needs a "
            "torchvision build matching the installed torch, opencv-python-headless and pillow"
        )

    module.__getattr__ = __getattr__
    STATUS.object_detection = "placeholder"
    STATUS.object_detection_reason = reason


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Answers only for the three problem modules; every other import is left to the normal finders."""

    def find_spec(self, fullname, path, target=None):
        if fullname == VAR_MODEL and var_model_fix_needed():
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                spec.loader = _RewritingLoader(fullname, spec.origin)
            return spec
        if fullname == LAVA_MULTIPROCESSING:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None:
                spec.loader = _SameStartMethodLoader(spec.loader)
            return spec
        if fullname == OBJECT_DETECTION:
            mode = os.environ.get("SNNDEPLOY_LAVA_OBD", "auto").lower()
            if mode == "real":
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None:
                spec.loader = _OptionalLoader(spec.loader, mode)
            return spec
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path``; idempotent. Must run before the first lava import."""
    if not any(isinstance(f, LavaCompatFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, LavaCompatFinder())
    STATUS.installed = True
    STATUS.var_model_fix_needed = var_model_fix_needed()


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def report() -> dict:
    """The shims' state plus the lava versions they were written for, as a plain dict."""
    lava_nc = installed_version("lava-nc")
    return {
        **dataclasses.asdict(STATUS),
        "lava_nc": lava_nc,
        "lava_dl": installed_version("lava-dl"),
        "lava_nc_known_affected": lava_nc in VAR_MODEL_AFFECTED,
    }
