"""``load_model(path)``: a SlayerNet from a spec YAML, a training checkpoint, a netx HDF5 or a NIR file."""

from __future__ import annotations

from pathlib import Path

from snndeploy import validate
from snndeploy.errors import UserError

SPEC_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
NETX_SUFFIXES = (".net", ".h5", ".hdf5")
NIR_SUFFIXES = (".nir",)


def load_model(path: str | Path):
    """Build the model a file describes: a spec gives fresh weights, the others carry trained weights."""
    path = Path(path)
    if not path.exists():
        raise UserError("model file not found", path)
    model = _build(path, path.suffix.lower())
    if path.suffix.lower() not in SPEC_SUFFIXES:
        validate.check_tensors(model.state_dict().items(), path)
    return model


def _build(path: Path, suffix: str):
    if suffix in SPEC_SUFFIXES:
        from snndeploy.models.build import build_model
        from snndeploy.models.spec import load_spec

        return build_model(load_spec(validate.require_file(path, "spec")))
    if suffix in CHECKPOINT_SUFFIXES:
        from snndeploy.train.checkpoint import load_checkpoint, model_from_checkpoint

        return model_from_checkpoint(load_checkpoint(path), path)
    if suffix in NETX_SUFFIXES:
        from snndeploy.models.netx_import import import_netx

        validate.check_hdf5(validate.require_file(path, "netx"))
        try:
            return import_netx(path)
        except UserError as refused:
            return _load_sdnn(path, refused)
    if suffix in NIR_SUFFIXES:
        return _load_nir(validate.check_nir_file(path))
    raise UserError(f"unknown model file type {suffix or '(none)'!r}; expected a spec ({', '.join(SPEC_SUFFIXES)}), "
                    f"checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}), netx ({', '.join(NETX_SUFFIXES)}) or .nir", path)


def _load_sdnn(path: Path, refused: UserError):
    """A sigma-delta netx file as lava-dl sigma-delta blocks, through the exporter's reader (docs/sdnn.md);
    ``refused`` (the SLAYER importer's error) for any other file."""
    from snndeploy.export.ir import is_sigma_delta
    from snndeploy.export.netx_io import read_netx
    from snndeploy.export.slayer_io import to_slayer

    try:
        net = read_netx(path)
    except UserError:
        raise refused from None
    if not is_sigma_delta(net):
        raise refused
    try:
        return to_slayer(net)
    except UserError as exc:
        raise UserError(exc.problem, path) from None


def _load_nir(path: Path):
    try:
        from snndeploy.export import nir_io
    except ImportError as exc:
        raise UserError(f"reading NIR needs snndeploy.export.nir_io, which is not available ({exc})", path) from exc
    reader = getattr(nir_io, "load_nir_model", None)
    if reader is None:
        raise UserError("snndeploy.export.nir_io has no load_nir_model(path); NIR import is not available yet", path)
    return reader(path)
