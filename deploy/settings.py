"""Where data and fixtures live: one setting each (environment variable or CLI option, checkout default)."""

from __future__ import annotations

import os
from pathlib import Path

from snndeploy.errors import UserError

DATA_ENV = "SNNDEPLOY_DATA"
FIXTURES_ENV = "SNNDEPLOY_FIXTURES"
REPO_ROOT = Path(__file__).resolve().parent.parent
# A checkout sits beside ../shared (data and trained lava-dl fixtures).
_CHECKOUT_DEFAULTS = {DATA_ENV: REPO_ROOT.parent / "shared" / "data",
                      FIXTURES_ENV: REPO_ROOT.parent / "shared" / "fixtures"}


def _resolve(env: str, override: str | Path | None) -> Path:
    if override is not None:
        return Path(override).expanduser().resolve()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser().resolve()
    return _CHECKOUT_DEFAULTS[env].resolve()


def data_dir(override: str | Path | None = None) -> Path:
    """The datasets folder: ``override``, else ``$SNNDEPLOY_DATA``, else ``../shared/data``."""
    return _resolve(DATA_ENV, override)


def fixtures_dir(override: str | Path | None = None) -> Path:
    """The trained lava-dl networks folder: ``override``, else ``$SNNDEPLOY_FIXTURES``, else ``../shared/fixtures``."""
    return _resolve(FIXTURES_ENV, override)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise UserError(f"{what} folder not found (set ${DATA_ENV} or pass --data-dir)", path)
    return path


def set_data_dir(path: str | Path) -> None:
    """Make ``path`` the data folder for this process and the processes it starts."""
    os.environ[DATA_ENV] = str(Path(path).expanduser().resolve())
