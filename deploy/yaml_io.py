"""Reading user YAML files: a missing, binary or malformed file is a one-line UserError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from snndeploy.errors import UserError
from snndeploy.validate import LFS_MAGIC

MAX_YAML_BYTES = 16 << 20  # configs, specs, budgets and profiles are a few kB


def parse_yaml(text: str, where: str | Path, what: str) -> Any:
    """``text`` parsed as YAML; ``what`` names the kind of file in the error (``model spec``, ``budget``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{what} is not valid YAML ({str(exc).splitlines()[0]})", where) from None


def read_yaml(path: str | Path, what: str, *, missing: str | None = None) -> Any:
    """The YAML file at ``path``; ``missing`` replaces the default "<what> not found" message."""
    path = Path(path)
    if not path.is_file():
        raise UserError(missing or f"{what} not found", path)
    if path.stat().st_size > MAX_YAML_BYTES:
        raise UserError(f"{what} is {path.stat().st_size:,} bytes; a YAML file may have at most {MAX_YAML_BYTES:,}",
                        path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{what} is not a text file (YAML expected)", path) from None
    except OSError as exc:
        raise UserError(f"cannot read {what}: {exc.strerror}", path) from None
    if text.encode()[:len(LFS_MAGIC)] == LFS_MAGIC:
        raise UserError(f"{what} is a Git LFS pointer, not the file itself (fetch it: git lfs pull)", path)
    return parse_yaml(text, path, what)
