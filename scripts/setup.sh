#!/usr/bin/env bash
# Create .venv and install the snndeploy stack: torch 2.13.0, lava-nc 0.10.0, lava-dl 0.6.0
# (without their stale pins), the pinned runtime dependencies and snndeploy itself (editable).
# Re-running is fast: when nothing that defines the environment changed, it only checks it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SNNDEPLOY_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
LAVA_PACKAGES=(lava-nc==0.10.0 lava-dl==0.6.0)
STAMP="$VENV/.snndeploy-setup"

say() { printf '[setup] %s\n' "$*"; }

"$PY" - <<'PYCHECK' || { echo "[setup] error: Python >= 3.10 is required (found $("$PY" --version 2>&1))" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PYCHECK

fingerprint() {
  cat "$ROOT/requirements/stack.txt" "$ROOT/requirements/constraints.txt" \
      "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1
}

# The machine's pip config lists local index folders that do not all exist; pip warns about each.
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }

installed_root() {
  "$VENV/bin/python" -c "import pathlib, snndeploy; print(pathlib.Path(snndeploy.__file__).resolve().parents[1])" \
    2>/dev/null || true
}

install_project() {
  say "installing snndeploy (editable) from $ROOT"
  quiet "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT" \
    || quiet "${PIP[@]}" install -q --no-deps -e "$ROOT"
}

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]]; then
  # Same environment; a venv reused by another checkout (e.g. a CI cache) only needs the project re-pointed.
  [[ "$(installed_root)" == "$ROOT" ]] || install_project
  say "environment up to date: $VENV"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }

# torch first and alone: on this machine kind 'torch==2.13.0' resolves to the local CPU wheel
# (pip find-links); elsewhere to PyPI's build. Skipped when 2.13.0 is already there.
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "installing torch==$TORCH_VERSION"
  quiet "${PIP[@]}" install -q "torch==$TORCH_VERSION"
fi

# Pinned dependencies WITHOUT --ignore-requires-python (that flag would let pip pick a scipy
# that needs Python 3.12 and build it from source).
say "installing pinned dependencies"
quiet "${PIP[@]}" install -q -r "$ROOT/requirements/stack.txt" -c "$ROOT/requirements/constraints.txt"

# lava-nc/lava-dl declare Python <3.11 and pin torch<2.4: install them without their metadata pins.
say "installing ${LAVA_PACKAGES[*]} (--no-deps --ignore-requires-python)"
quiet "${PIP[@]}" install -q --no-deps --ignore-requires-python "${LAVA_PACKAGES[@]}"

install_project

"$VENV/bin/python" -c "import snndeploy, lava.lib.dl.slayer, lava.lib.dl.netx" \
  || { echo "[setup] error: the installed stack does not import (see above)" >&2; exit 1; }
fingerprint > "$STAMP"
say "done in $(( $(date +%s) - start )) s: $VENV"
