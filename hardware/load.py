"""Read a model for the estimator: a NIR graph directly, other formats through snndeploy.models/export."""

from __future__ import annotations

from pathlib import Path

from snndeploy.errors import UserError
from snndeploy.hardware.layers import Layer, layers_from_nir

NETX_SUFFIXES = (".net", ".h5", ".hdf5")
OTHER_SUFFIXES = (*NETX_SUFFIXES, ".pt", ".pth", ".ckpt", ".yaml", ".yml")


def read_nir_graph(path: Path):
    from snndeploy.export.nir_io import read_graph

    return read_graph(path)


def graph_of(path: str | Path):
    """The NIR graph of a ``.nir`` file, a netx HDF5, a checkpoint or a spec (the latter via SLAYER -> NIR)."""
    path = Path(path)
    if not path.is_file():
        raise UserError("model file not found", path)
    suffix = path.suffix.lower()
    if suffix == ".nir":
        return read_nir_graph(path)
    if suffix in OTHER_SUFFIXES:
        from snndeploy.export.netx_io import read_netx
        from snndeploy.export.nir_io import to_nir
        from snndeploy.export.slayer_io import from_slayer
        from snndeploy.models.load import load_model

        try:
            return to_nir(from_slayer(load_model(path)))
        except UserError:
            if suffix not in NETX_SUFFIXES:
                raise
            return to_nir(read_netx(path))  # what the SLAYER importer refuses (sigma-delta layers, pooling)
    raise UserError(f"unknown model file type {suffix or '(none)'!r}; expected .nir, a netx HDF5 "
                    f"(.net/.h5), a checkpoint (.pt) or a spec (.yaml)", path)


def load_layers(path: str | Path) -> tuple[Layer, ...]:
    """The estimator's per-layer description of a model file."""
    try:
        return layers_from_nir(graph_of(path))
    except UserError as exc:
        if exc.path is None:
            raise UserError(exc.problem, path) from None
        raise
