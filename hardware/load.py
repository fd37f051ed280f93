"""Read a model for the estimator: a NIR graph directly, other formats through the one loader (snndeploy.loader)."""

from __future__ import annotations

from pathlib import Path

from snndeploy.errors import UserError
from snndeploy.export.nir_io import to_nir
from snndeploy.hardware.layers import LayerCount, layers_from_nir
from snndeploy.loader import model_format, open_model


def read_nir_graph(path: Path):
    import nir

    try:
        return nir.read(str(path))
    except Exception as exc:  # nir raises KeyError/OSError/ValueError for a malformed file
        raise UserError(f"not a readable NIR file ({type(exc).__name__}: {exc})", path) from None


def graph_of(path: str | Path):
    """The NIR graph of a ``.nir`` file, a netx HDF5, a checkpoint or a spec (the latter via SLAYER -> NIR)."""
    path, fmt = model_format(path)
    if fmt == "nir":
        return read_nir_graph(path)
    return to_nir(open_model(path, model=False, net=True, via_model=True).net)


def load_layers(path: str | Path) -> tuple[LayerCount, ...]:
    """The estimator's per-layer description of a model file."""
    try:
        return layers_from_nir(graph_of(path))
    except UserError as exc:
        if exc.path is None:
            raise UserError(exc.problem, path) from None
        raise
