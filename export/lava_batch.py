"""Many samples in one Lava build: ``B`` independent copies of a network side by side in the same processes.

Lava's CPU backend spends most of a time step on per-process messaging, not arithmetic, so a network of ``B``
copies costs little more per step than one. Each layer becomes one process holding all copies:

* dense (and recurrent) weights: a block-diagonal ``Sparse`` matrix, copy ``b`` on block ``b``;
* conv, pool and image input-scale layers: one grouped ``Conv`` with the copies stacked on the channel axis
  (``groups x B``, the kernels repeated per copy), so that no copy sees another's channels;
* neurons: one ``LIF`` group of ``B x`` the neurons, bias and decays repeated per copy;
* flatten: Lava's ``XYC -> CHW`` flatten of the stacked channels is copy-major, so every copy keeps its own
  C-major block.

Every copy starts from zero state at step 0, with its bias and axonal delays, exactly as a separate run of its
sample. Copies are numbered on the leading (channel) axis: :func:`stack_copies` and :func:`split_copies`
convert between ``(B, C, ...)`` and ``(B*C, ...)``.

How many copies (:func:`choose_copies`): Lava's ``Conv`` model keeps ``groups`` in an ``int8``, so ``B`` times a
layer's groups must stay at most 127, and the copies' synapses must fit ``memory_bytes``. Within those, more
copies are faster: a build's fixed cost (compiling, forking one process per process model, stopping) and each
step's messaging are shared by all copies, while what grows with B (weights to set up, arithmetic) grows no
faster than with separate builds.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
from scipy.sparse import csr_matrix, identity

from snndeploy.export.ir import Layer, LoihiNet, per_neuron

MAX_GROUPS = 127  # Lava's PyConvModel holds ``groups`` in an int8
MAX_COPIES = 256
DEFAULT_MEMORY_BYTES = 3 << 29  # 1.5 GiB: memory one build's copies may add, all of its processes together
# Sparse synapses of a batched build take spikes on Lava's graded path (``weights.dot(s)``): for 0/1 spikes the
# same integer sums as the binary path (``weights[:, s].sum(1)``), which slices the CSR matrix and is ~5x slower.
SPARSE_MESSAGE_BITS = 1
# measured (benchmarks/simulate_speed.py, PSS of the whole process tree): mnist-mlp-512 adds 75-120 bytes per
# synapse and copy (the CSR matrix in the parent, Lava's copies in the process and its worker, clipped copies)
BYTES_PER_SYNAPSE = 100
_BLOCKS: dict[tuple, csr_matrix] = {}  # the last build's block-diagonal matrices (Lava's Sparse copies them)
_BLOCKS_KEPT = 6


def stack_copies(x: np.ndarray) -> np.ndarray:
    """``(B, C, ...)`` -> ``(B*C, ...)``: copy b on channels ``b*C .. (b+1)*C - 1``."""
    x = np.asarray(x)
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def split_copies(x: np.ndarray, copies: int) -> np.ndarray:
    """``(B*C, ...)`` -> ``(B, C, ...)``."""
    x = np.asarray(x)
    return x.reshape(copies, x.shape[0] // copies, *x.shape[1:])


def copies_shape(shape: tuple[int, ...], copies: int) -> tuple[int, ...]:
    return (shape[0] * copies, *shape[1:])


def tile_per_neuron(value, shape: tuple[int, ...], copies: int) -> np.ndarray:
    """A scalar, per-channel or per-neuron parameter of one copy, for ``copies`` copies stacked on axis 0."""
    return np.concatenate([per_neuron(value, shape)] * copies, axis=0)


def block_diagonal(w: np.ndarray, copies: int) -> csr_matrix:
    """``copies`` copies of ``w`` (out, in) on the diagonal of a ``(B*out, B*in)`` sparse matrix.

    Built from the CSR arrays directly (scipy's ``block_diag`` takes seconds for millions of entries) and kept
    for the next build of the same weights (a run builds the same network once per chunk of samples)."""
    w = np.asarray(w)
    key = (hashlib.blake2b(np.ascontiguousarray(w).view(np.uint8).reshape(-1), digest_size=16).hexdigest(),
           w.shape, w.dtype.str, copies)
    if key not in _BLOCKS:
        for old in [k for k in _BLOCKS if k[-1] != copies]:  # another batch size: that run is over
            del _BLOCKS[old]
        while len(_BLOCKS) >= _BLOCKS_KEPT:
            _BLOCKS.pop(next(iter(_BLOCKS)))
        _BLOCKS[key] = _block_diagonal(w, copies)
    return _BLOCKS[key]


def _block_diagonal(w: np.ndarray, copies: int) -> csr_matrix:
    one = csr_matrix(w)
    one.sort_indices()
    if copies == 1:
        return one
    rows, cols = one.shape
    nnz = one.nnz
    data = np.tile(one.data, copies)
    indices = (one.indices[None, :].astype(np.int64) + cols * np.arange(copies)[:, None]).reshape(-1)
    indptr = np.concatenate([[0], (one.indptr[1:][None, :].astype(np.int64)
                                   + nnz * np.arange(copies)[:, None]).reshape(-1)])
    index_type = np.int32 if max(nnz * copies, cols * copies) < np.iinfo(np.int32).max else np.int64
    return csr_matrix((data, indices.astype(index_type), indptr.astype(index_type)),
                      shape=(rows * copies, cols * copies))


def scaled_identity(size: int, value, dtype) -> csr_matrix:
    return (identity(size, dtype=dtype, format="csr") * value).tocsr()


def replicate_layer(layer: Layer, copies: int) -> Layer:
    """``layer`` for ``copies`` stacked copies: shapes, neuron parameters, conv kernels and groups, delays, synaptic
    biases.

    Dense and recurrent weights are never built as a dense ``B x`` matrix: the synapse is built block-diagonal
    from the original layer's weights, and the replicated layer holds a placeholder of the right shape that
    takes no memory and is NaN everywhere, so that any use of it fails loudly."""
    if copies == 1:
        return layer
    n = layer.neuron
    shape = layer.out_shape
    neuron = replace(n, i_decay=tile_per_neuron(n.i_decay, shape, copies),
                     v_decay=tile_per_neuron(n.v_decay, shape, copies),
                     bias=None if n.bias is None else tile_per_neuron(n.bias, shape, copies))
    changes = {"in_shape": copies_shape(layer.in_shape, copies), "out_shape": copies_shape(shape, copies),
               "neuron": neuron}
    if layer.delay is not None:
        changes["delay"] = tile_per_neuron(layer.delay, shape, copies)
    if layer.op == "conv":
        changes["weight"] = np.concatenate([np.asarray(layer.weight)] * copies, axis=0)
        changes["groups"] = layer.groups * copies
    if layer.op == "dense":
        changes["weight"] = _placeholder(np.asarray(layer.weight).size * copies ** 2)
    if layer.recurrent is not None:
        changes["recurrent"] = _placeholder(np.asarray(layer.recurrent).size * copies ** 2)
    if layer.syn_bias is not None:
        changes["syn_bias"] = np.tile(np.asarray(layer.syn_bias).reshape(-1), copies)
    return replace(layer, **changes)


def _placeholder(size: int) -> np.ndarray:
    """``size`` NaNs in no memory (a read-only broadcast view of one value)."""
    return np.broadcast_to(np.float64(np.nan), (size,))


def groups_per_copy(layer: Layer) -> int:
    """Lava ``Conv`` groups one copy of ``layer`` needs (0: no Conv process)."""
    if layer.op == "conv":
        return layer.groups
    if layer.op == "pool" or (layer.op == "input" and len(layer.in_shape) == 3):
        return layer.in_shape[0]
    return 0


def max_copies(net: LoihiNet) -> int:
    """The most copies Lava's ``Conv`` (int8 ``groups``) allows for ``net``."""
    groups = max((groups_per_copy(layer) for layer in net.layers), default=0)
    return MAX_GROUPS // groups if groups else 1 << 30


def synapses_per_copy(net: LoihiNet) -> int:
    """Stored synapses (and neurons) of one copy: what its Lava processes hold and touch per step."""
    total = 0
    for layer in net.layers:
        total += layer.size
        if layer.op == "dense":
            total += int(np.count_nonzero(layer.weight))
        elif layer.op == "conv":
            total += int(np.asarray(layer.weight).size)
        if layer.recurrent is not None:
            total += int(np.count_nonzero(layer.recurrent))
    return total


def choose_copies(net: LoihiNet, samples: int, *, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> int:
    """Copies per build: ``min(samples, Conv's group limit, memory bound, MAX_COPIES)``, at least 1.

    * group limit: :func:`max_copies`;
    * memory bound: ``memory_bytes / (BYTES_PER_SYNAPSE x synapses of one copy)``;
    * ``MAX_COPIES`` keeps a build's Lava messages (one array of all copies per port and step) moderate.
    """
    per_copy = max(synapses_per_copy(net), 1)
    by_memory = memory_bytes // (BYTES_PER_SYNAPSE * per_copy)
    return max(1, min(samples, max_copies(net), by_memory, MAX_COPIES))
