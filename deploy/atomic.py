"""Atomic writes: a reader sees the old file or the complete new one, never a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snndeploy.errors import UserError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _publish(tmp: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give the result the permissions of a normal file."""
    os.chmod(tmp, mode & ~_umask())


def _refuse_existing(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise UserError("exists; pass --force to overwrite it", target)


@contextlib.contextmanager
def atomic_path(target: str | Path, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; it replaces ``target`` only if the block succeeds.

    With ``force=False`` an existing ``target`` is an error and is left untouched.
    """
    target = Path(target)
    _refuse_existing(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publish(tmp, 0o666)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, force: bool = True) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder: fill the yielded folder; it becomes ``target`` on success."""
    target = Path(target)
    _refuse_existing(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _publish(tmp, 0o777)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: str | Path, text: str, *, force: bool = True) -> Path:
    with atomic_path(target, force=force) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | Path, obj: Any, *, force: bool = True) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=to_jsonable) + "\n", force=force)


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
