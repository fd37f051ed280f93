"""Training checkpoints: plain dicts (spec, state dict, optimizer, epoch, RNG state) loaded with weights_only=True."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snndeploy import validate
from snndeploy.errors import UserError

FORMAT = "snndeploy-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """torch, numpy and Python RNG states as tensors and plain data (weights_only-loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_checkpoint(model: torch.nn.Module, *, optimizer: torch.optim.Optimizer | None = None, epoch: int = 0,
                    metrics: list[dict] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict of a SlayerNet (``model.spec``) after ``epoch`` completed epochs."""
    from snndeploy.models.spec import spec_to_dict

    net = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {
        "format": FORMAT, "version": VERSION,
        "spec": spec_to_dict(net.spec),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "rng": rng_state(),
        "metrics": list(metrics or []),
        "extra": dict(extra or {}),
    }


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    from snndeploy.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    return Path(path)


def safe_torch_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)``; a refused payload, an empty or corrupt file is a one-line UserError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        text = str(exc)
        if "Weights only load failed" in text:
            culprit = next((line.strip() for line in text.splitlines() if "GLOBAL" in line), "")
            raise UserError(f"refused to load as {what}: the file asks to run code ({culprit or 'not plain data'}); "
                            "only tensors and plain data are loaded", path) from None
        detail = next((line.strip() for line in text.splitlines() if line.strip()), "empty or truncated file")
        raise UserError(f"cannot load as {what} ({type(exc).__name__}: {detail})", path) from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing, corrupt or foreign file is a UserError."""
    path = validate.require_file(path, "checkpoint")
    data = safe_torch_load(path, "a checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if isinstance(data, dict) and "spec" in data and "state_dict" in data:
            return {"epoch": 0, "optimizer": None, "metrics": [], "extra": {}, **data}
        raise UserError("not an snndeploy checkpoint (expected a dict with 'spec' and 'state_dict')", path)
    if data.get("version", 0) > VERSION:
        raise UserError(f"checkpoint version {data['version']} is newer than this snndeploy ({VERSION})", path)
    return data


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path | None = None):
    """Build the SlayerNet the checkpoint describes and load its weights."""
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    try:
        spec = spec_from_dict(checkpoint["spec"])
    except UserError as exc:
        raise UserError(exc.problem, path) from exc
    net = build_model(spec)
    try:
        net.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"weights do not fit the spec ({str(exc).splitlines()[0]})", path) from exc
    return net
