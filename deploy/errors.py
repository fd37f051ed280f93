"""User-facing errors: one line, naming the file and the problem; the CLI turns them into exit code 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """Bad input from the user (missing or corrupt file, wrong shape, bad config)."""

    exit_code = 2

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """A UserError raised inside that names no file names ``path``: the file whose content caused it."""
    try:
        yield
    except UserError as exc:
        if exc.path is not None:
            raise
        raise UserError(exc.problem, path) from None
