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


def check_output(target: str | Path, *, force: bool, folder: bool = False) -> Path:
    """Refuse an output path that cannot or must not be written, before any work starts.

    Its nearest existing parent must be a folder; an existing ``target`` needs ``force`` and must be of the
    kind written (a file is never replaced by a folder or the other way round: that would delete data).
    """
    target = Path(target)
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"cannot be created: {parent} is a file, not a folder", target)
    if not target.exists():
        return target
    if target.is_dir() != folder:
        found, wanted = ("a folder", "a file") if target.is_dir() else ("a file", "a folder")
        raise UserError(f"is {found}; this command writes {wanted} here (choose another path)", target)
    if not force:
        raise UserError("exists; pass --force to overwrite it", target)
    return target


@contextlib.contextmanager
def atomic_path(target: str | Path, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; it replaces ``target`` only if the block succeeds.

    With ``force=False`` an existing ``target`` is an error and is left untouched.
    """
    target = check_output(target, force=force)
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
    target = check_output(target, force=force, folder=True)
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


@contextlib.contextmanager
def set_aside(folder: str | Path, names: list[str] | None = None) -> Iterator[None]:
    """``--force`` for a command that fills ``folder`` as it goes: the old entries (``names``, default all) move
    to a hidden sibling while the block runs; they are deleted when it succeeds and put back when it fails or is
    interrupted, so nothing is lost before the new output is complete."""
    folder = Path(folder)
    old = [folder / n for n in names] if names is not None else (list(folder.iterdir()) if folder.is_dir() else [])
    old = [p for p in old if p.exists() or p.is_symlink()]
    if not old:
        yield
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    for entry in old:
        os.replace(entry, backup / entry.name)
    try:
        yield
    except BaseException:
        for entry in old:  # whatever the failed run wrote under these names goes; the old entries come back
            _remove(entry)
            os.replace(backup / entry.name, entry)
        shutil.rmtree(backup, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
