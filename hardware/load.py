"""Read a model for the estimator through the one loader (:mod:`snndeploy.loader`).

Every model file becomes the one IR and is counted from it (:func:`layers_from_ir`). A ``.nir`` file is read by
the exporter's NIR reader (``export.nir_io``, the one place NIR files are read and parsed) with
``structure_only=True``: other tools' graphs are counted even where they could not run on Loihi as they stand
(no time step, reset by subtraction), and large scipy.sparse weights stay sparse.
"""

from __future__ import annotations

from pathlib import Path

from snndeploy.errors import naming
from snndeploy.export.nir_io import from_nir, read_graph, to_nir
from snndeploy.hardware.layers import LayerCount, layers_from_ir
from snndeploy.loader import model_format, open_model


def graph_of(path: str | Path):
    """The NIR graph of a ``.nir`` file, a netx HDF5, a checkpoint or a spec (the latter through the IR)."""
    path, fmt = model_format(path)
    if fmt == "nir":
        return read_graph(path)
    return to_nir(open_model(path, model=False, net=True, via_model=True).net)


def layers_from_nir(graph) -> tuple[LayerCount, ...]:
    """The per-layer counts of a ``nir.NIRGraph`` (through the IR, structure only)."""
    return layers_from_ir(from_nir(graph, structure_only=True))


def load_layers(path: str | Path) -> tuple[LayerCount, ...]:
    """The estimator's per-layer counts of a model file."""
    with naming(path):
        path, fmt = model_format(path)
        if fmt == "nir":
            return layers_from_nir(read_graph(path))
        return layers_from_ir(open_model(path, model=False, net=True, via_model=True).net)
