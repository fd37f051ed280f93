"""Many samples in one Lava build: ``B`` independent copies of a network side by side in the same processes.

Lava's CPU backend spends most of a time step on per-process messaging, not arithmetic, so a network of ``B``
copies costs little more per step than one. Each layer becomes one process holding all copies:

* dense (and recurrent) weights: a block-diagonal ``Sparse`` matrix, copy ``b`` on block ``b``;
* conv, pool and image input-scale layers in fixed_pt: one ``Sparse`` holding the layer unrolled into its
  (output x input) matrix for all copies (:func:`unrolled_conv`, the rule: :func:`unrolls`); otherwise one grouped
  ``Conv`` with the copies stacked on the channel axis (``groups x B``, the kernels repeated per copy), so that no
  copy sees another's channels;
* neurons: one ``LIF`` group of ``B x`` the neurons, bias and decays repeated per copy;
* flatten: Lava's ``XYC -> CHW`` flatten of the stacked channels is copy-major, so every copy keeps its own
  C-major block.

Every copy starts from zero state at step 0, with its bias and axonal delays, exactly as a separate run of its
sample. Copies are numbered on the leading (channel) axis: :func:`stack_copies` and :func:`split_copies`
convert between ``(B, C, ...)`` and ``(B*C, ...)``.

Why unrolled: Lava's fixed_pt ``Conv`` model convolves with one ``scipy.signal.convolve2d`` call per output and
input channel pair every step (its torch path is disabled in Lava), 3.5 ms for the N-MNIST CNN's first layer and
12 ms for its second, growing with the copies; the same layer as a ``Sparse`` matrix product takes 0.2 ms
(docs/benchmarks.md). Its integer sums are the same: ``Conv`` clamps them to 24 signed bits, so a layer unrolls only
where no sum can reach that bound, and only in fixed_pt (floating-point sums in another order could round apart).

How many copies (:func:`choose_copies`): Lava's ``Conv`` model keeps ``groups`` in an ``int8``, so ``B`` times a
``Conv`` layer's groups must stay at most 127, and the copies' synapses must fit ``memory_bytes``. Within those, more
copies are faster: a build's fixed cost (compiling, forking one process per process model, stopping) and each
step's messaging are shared by all copies, while what grows with B (weights to set up, arithmetic) grows no
faster than with separate builds.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
from scipy.sparse import csr_matrix, identity

from snndeploy.export.ir import W_SCALE, Layer, LoihiNet, per_neuron, to_int_exact
from snndeploy.export.quantize import fit_weights

MAX_GROUPS = 127  # Lava's PyConvModel holds ``groups`` in an int8
MAX_COPIES = 256
DEFAULT_MEMORY_BYTES = 3 << 29  # 1.5 GiB: memory one build's copies may add, all of its processes together
# Sparse synapses of a batched build take spikes on Lava's graded path (``weights.dot(s)``): for 0/1 spikes the
# same integer sums as the binary path (``weights[:, s].sum(1)``), which slices the CSR matrix and is ~5x slower.
SPARSE_MESSAGE_BITS = 1
# measured (benchmarks/simulate_speed.py, PSS of the whole process tree): mnist-mlp-512 adds 75-120 bytes per
# synapse and copy (the CSR matrix in the parent, Lava's copies in the process and its worker, clipped copies)
BYTES_PER_SYNAPSE = 100
# one copy's unrolled conv layer holds out_size x taps synapses; larger layers stay a Conv (memory)
MAX_UNROLLED_SYNAPSES = 1 << 21
MAX_CONV_SUM = (1 << 23) - 1  # Lava's fixed_pt Conv clamps its sums to 24 signed bits, Sparse does not
_BLOCKS: dict[tuple, csr_matrix] = {}  # the last build's block-diagonal and unrolled matrices (Lava copies them)
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
    return _kept((_digest(w), "block", copies), lambda: _block_diagonal(w, copies))


def _digest(w: np.ndarray) -> tuple:
    return (hashlib.blake2b(np.ascontiguousarray(w).view(np.uint8).reshape(-1), digest_size=16).hexdigest(),
            w.shape, w.dtype.str)


def _kept(key: tuple, make) -> csr_matrix:
    """``make()``, kept under ``key`` (whose last item is the copies) for the next build of the same run."""
    if key not in _BLOCKS:
        for old in [k for k in _BLOCKS if k[-1] != key[-1]]:  # another batch size: that run is over
            del _BLOCKS[old]
        while len(_BLOCKS) >= _BLOCKS_KEPT:
            _BLOCKS.pop(next(iter(_BLOCKS)))
        _BLOCKS[key] = make()
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


def conv_kernel(layer: Layer) -> tuple[np.ndarray, int]:
    """A conv, pool or image input-scale layer as one grouped correlation (torch's ``conv2d``): its kernel
    ``(out, in/groups, kh, kw)`` and groups (pooling and the input scale: one value per channel)."""
    if layer.op == "conv":
        return np.asarray(layer.weight, dtype=np.float64), layer.groups
    channels = layer.in_shape[0]
    value = float(np.asarray(layer.weight).reshape(-1)[0])
    if layer.op == "pool":
        return np.full((channels, 1, *layer.kernel), value), channels
    if layer.op == "input" and len(layer.in_shape) == 3:
        return np.full((channels, 1, 1, 1), value), channels
    raise ValueError(f"{layer.name}: a {layer.op} layer is no convolution")


def unrolled_kernel(layer: Layer, mode: str, bits: int = 0) -> tuple[np.ndarray, int, int] | None:
    """The rule: a conv, pool or image input-scale layer becomes a ``Sparse`` of its unrolled matrix in fixed_pt with
    binary input messages (``bits == 0``) when its kernel fits Loihi's 8-bit synapse (``fit_weights``), one copy's
    matrix holds at most ``MAX_UNROLLED_SYNAPSES`` synapses and no output's sum of |weights| can reach Conv's
    24-bit clamp. Returns the kernel's (mantissas, num_weight_bits, weight_exp) then, else None (a ``Conv``)."""
    if mode != "fixed_pt" or bits or groups_per_copy(layer) == 0:
        return None
    kernel = conv_kernel(layer)[0]
    try:
        ints = to_int_exact(kernel, W_SCALE, f"{layer.name} weights")
        fitted = fit_weights(ints, f"{layer.name} weights")
    except ValueError:
        return None
    taps = max(int(np.count_nonzero(ints)) // ints.shape[0], 1)
    largest = int(np.abs(ints).reshape(ints.shape[0], -1).sum(axis=1).max())
    return fitted if layer.size * taps <= MAX_UNROLLED_SYNAPSES and largest <= MAX_CONV_SUM else None


def unrolled_conv(layer: Layer, kernel: np.ndarray, copies: int = 1) -> csr_matrix:
    """``copies`` copies of the grouped correlation ``kernel`` of ``layer`` (:func:`conv_kernel`'s layout, any
    values) as one ``(out, in)`` matrix in Lava's flat ``XYC`` order (``x``, then ``y``, then the channel, with
    the copies stacked on the channel axis: copy b's channel c is channel ``b*C + c``), so that it takes the
    previous layer's flattened ``XYC`` spikes and gives the next neurons' ``XYC`` input; kept for the next
    build."""
    kernel = np.asarray(kernel)
    return _kept((_digest(kernel), layer.in_shape, layer.out_shape, layer.stride, layer.padding, layer.dilation,
                  copies), lambda: _unroll(layer, kernel, copies))


def _unroll(layer: Layer, kernel: np.ndarray, copies: int) -> csr_matrix:
    groups = conv_kernel(layer)[1]
    c_in, h_in, w_in = layer.in_shape
    c_out, h_out, w_out = layer.out_shape
    o, i, ky, kx = np.nonzero(kernel)  # the non-zero taps
    c = o // (c_out // groups) * kernel.shape[1] + i  # the input channel of each tap
    yi = np.arange(h_out)[None, :] * layer.stride[0] - layer.padding[0] + ky[:, None] * layer.dilation[0]
    xi = np.arange(w_out)[None, :] * layer.stride[1] - layer.padding[1] + kx[:, None] * layer.dilation[1]
    inside = ((yi >= 0) & (yi < h_in))[:, :, None] & ((xi >= 0) & (xi < w_in))[:, None, :]
    tap, y, x = np.nonzero(inside)  # (tap, output y, output x) of every synapse
    rows = (x * h_out + y) * (c_out * copies) + o[tap]
    cols = (xi[tap, x] * h_in + yi[tap, y]) * (c_in * copies) + c[tap]
    shift = np.arange(copies, dtype=np.int64)[:, None]
    size = (layer.size * copies, c_in * h_in * w_in * copies)
    index = np.int32 if max(size) * 1 < np.iinfo(np.int32).max else np.int64
    matrix = csr_matrix((np.tile(kernel[o[tap], i[tap], ky[tap], kx[tap]], copies),
                         ((rows[None, :] + shift * c_out).reshape(-1).astype(index),
                          (cols[None, :] + shift * c_in).reshape(-1).astype(index))), shape=size)
    matrix.sort_indices()
    return matrix


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
    """Lava ``Conv`` groups one copy of ``layer`` needs if it is built as a ``Conv`` (0: it has no Conv process)."""
    if layer.op == "conv":
        return layer.groups
    if layer.op == "pool" or (layer.op == "input" and len(layer.in_shape) == 3):
        return layer.in_shape[0]
    return 0


def max_copies(net: LoihiNet, mode: str = "fixed_pt") -> int:
    """The most copies Lava's ``Conv`` (int8 ``groups``) allows for the layers of ``net`` built as ``Conv``."""
    groups = max((groups_per_copy(layer) for layer in net.layers if unrolled_kernel(layer, mode) is None),
                 default=0)
    return MAX_GROUPS // groups if groups else 1 << 30


def synapses_per_copy(net: LoihiNet, mode: str = "fixed_pt") -> int:
    """Stored synapses (and neurons) of one copy: what its Lava processes hold and touch per step (an unrolled
    conv layer: every output's taps)."""
    total = 0
    for layer in net.layers:
        total += layer.size
        if layer.op == "dense":
            total += int(np.count_nonzero(layer.weight))
        elif unrolled_kernel(layer, mode) is not None:
            total += layer.size * max(int(np.count_nonzero(conv_kernel(layer)[0])) // layer.out_shape[0], 1)
        elif layer.op == "conv":
            total += int(np.asarray(layer.weight).size)
        if layer.recurrent is not None:
            total += int(np.count_nonzero(layer.recurrent))
    return total


def choose_copies(net: LoihiNet, samples: int, *, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                  mode: str = "fixed_pt") -> int:
    """Copies per build: ``min(samples, Conv's group limit, memory bound, MAX_COPIES)``, at least 1.

    * group limit: :func:`max_copies`;
    * memory bound: ``memory_bytes / (BYTES_PER_SYNAPSE x synapses of one copy)``;
    * ``MAX_COPIES`` keeps a build's Lava messages (one array of all copies per port and step) moderate.
    """
    per_copy = max(synapses_per_copy(net, mode), 1)
    by_memory = memory_bytes // (BYTES_PER_SYNAPSE * per_copy)
    return max(1, min(samples, max_copies(net, mode), by_memory, MAX_COPIES))
