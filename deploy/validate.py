"""Input validation at the boundary: every model, network and array file is checked before any work starts.

Three layers, each raising a one-line :class:`~snndeploy.errors.UserError` that names the file and the culprit:

* the file itself (:func:`require_file`): it exists, is a file, is not empty, is not a Git LFS pointer, and its
  content (not only its suffix) is the format the suffix promises;
* sizes before reading (:func:`check_hdf5`, :func:`check_npy`): no dataset or array may declare more than
  :data:`MAX_ELEMENTS` values, so a hostile header cannot make a reader allocate gigabytes;
* values and structure (:func:`check_graph` for NIR graphs, ``snndeploy.export.checks.check_net`` for the IR,
  :func:`check_tensors` for torch state): every weight, bias, threshold and time constant finite and inside what
  Loihi represents, graphs well-formed (known node types, edges to existing nodes, no zero-size layer, no cycle
  except a recurrent weight loop), shapes that agree from layer to layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from snndeploy.errors import UserError
from snndeploy.loihi import DECAY_UNITY, MAX_VTH_MANT

MAX_ELEMENTS = 1 << 27  # values in one array (1 GiB of float64); the largest fixture layer has < 1e6
MAX_FILE_BYTES = 4 << 30
WEIGHT_RANGE = (-256, 255)  # Loihi synaptic weight mantissa: 8 bits and a sign
BIAS_RANGE = (-(1 << 12), (1 << 12) - 1)  # 13-bit signed bias mantissa
INFINITE_OK = ("v_threshold", "tau", "tau_mem", "tau_syn", "r")  # NIR parameters where +inf has a meaning
LFS_MAGIC = b"version https://git-lfs.github.com/spec/"
MAGIC = {"hdf5": b"\x89HDF\r\n\x1a\n", "zip": b"PK\x03\x04", "npy": b"\x93NUMPY"}
# what each kind of file must contain; a pickle (protocol >= 2) starts with 0x80 (old torch.save format)
KINDS = {"spec": ("text",), "checkpoint": ("zip", "pickle"), "netx": ("hdf5",), "nir": ("hdf5",), "npy": ("npy",),
         "npz": ("zip",)}
KIND_NAMES = {"hdf5": "HDF5", "zip": "a zip archive", "npy": "a NumPy .npy array", "pickle": "a pickle",
              "text": "text", "binary": "unrecognised binary data"}


def sniff(head: bytes) -> str:
    """The format the first bytes of a file show: hdf5, zip, npy, pickle, lfs, text or binary."""
    for kind, magic in MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith(LFS_MAGIC):
        return "lfs"
    if head[:1] == b"\x80":
        return "pickle"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is still text
            return "binary"
    return "binary" if b"\x00" in head else "text"


def require_file(path: str | Path, kind: str) -> Path:
    """``path`` as an existing, non-empty regular file whose content is a ``kind`` (see :data:`KINDS`) file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{kind} file not found", path)
    if path.is_dir():
        raise UserError(f"is a folder; expected a {kind} file", path)
    if not path.is_file():
        raise UserError(f"is not a regular file; expected a {kind} file", path)
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"is empty (0 bytes); expected a {kind} file", path)
    if size > MAX_FILE_BYTES:
        raise UserError(f"is {size / 2**30:.1f} GiB, over the {MAX_FILE_BYTES >> 30} GiB limit for a {kind} file",
                        path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise UserError(f"cannot be read ({exc.strerror or exc})", path) from None
    found = sniff(head)
    if found == "lfs":
        raise UserError("is a Git LFS pointer, not the file itself (fetch it: git lfs pull)", path)
    if found not in KINDS[kind]:
        expected = " or ".join(KIND_NAMES[k] for k in KINDS[kind])
        raise UserError(f"is not a {kind} file: its content is {KIND_NAMES[found]}, expected {expected}", path)
    return path


def check_hdf5(path: str | Path, limit: int = MAX_ELEMENTS) -> None:
    """Open an HDF5 file and refuse it if it is unreadable or any dataset declares more than ``limit`` values."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            big: list[tuple[str, tuple[int, ...]]] = []

            def visit(name: str, obj) -> None:
                if isinstance(obj, h5py.Dataset) and obj.shape is not None and int(np.prod(obj.shape)) > limit:
                    big.append((name, tuple(obj.shape)))

            f.visititems(visit)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"not a readable HDF5 file ({type(exc).__name__}: {_first_line(exc)})", path) from None
    if big:
        name, shape = big[0]
        raise UserError(f"dataset {name!r} declares shape {shape} ({int(np.prod(shape)):.3g} values), over the "
                        f"limit of {limit:.3g}", path)


def check_npy(path: str | Path, limit: int = MAX_ELEMENTS) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a ``.npy`` header, refusing object arrays and arrays over ``limit`` values unread."""
    path = require_file(path, "npy")
    with open(path, "rb") as fh:
        return _npy_header(fh, path, limit)


def check_npz(path: str | Path, limit: int = MAX_ELEMENTS) -> Path:
    """Every array of a ``.npz`` archive passes :func:`check_npy`'s header checks (read before the data)."""
    import zipfile

    path = require_file(path, "npz")
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as fh:
                    _npy_header(fh, path, limit, f"array {name!r} ")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"not a readable .npz archive ({_first_line(exc)})", path) from None
    return path


def _npy_header(fh, path: Path, limit: int, what: str = "") -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(fh)
        shape, _, dtype = np.lib.format._read_array_header(fh, version)
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise UserError(f"{what}not a readable .npy array ({_first_line(exc)})", path) from None
    if dtype.hasobject:
        raise UserError(f"{what}holds Python objects; only numeric arrays are read", path)
    count = int(np.prod(shape))
    if count > limit:
        raise UserError(f"{what}declares shape {tuple(shape)} ({count:.3g} values), over the limit of {limit:.3g}",
                        path)
    if dtype.kind not in "biuf":
        raise UserError(f"{what}has dtype {dtype}; expected numbers", path)
    return tuple(shape), dtype


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:160]


# ------------------------------------------------------------------------------------------------- values


def first_bad(values, finite: bool = True, lo: float | None = None, hi: float | None = None):
    """(index, value) of the first element that is not finite or lies outside [lo, hi]; None if all are fine."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf" and (arr.size == 0 or _all_fine(arr, finite, lo, hi)):
        return None  # the usual case, in two reductions without a copy (weights of 1e8 synapses)
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr) if finite else np.isnan(arr)
    with np.errstate(invalid="ignore"):
        if lo is not None:
            bad |= arr < lo
        if hi is not None:
            bad |= arr > hi
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
    return index, float(arr[index] if arr.ndim else arr)


def _all_fine(arr: np.ndarray, finite: bool, lo: float | None, hi: float | None) -> bool:
    low, high = arr.min(), arr.max()  # NaN propagates into both
    if np.isnan(low) or np.isnan(high) or (finite and not (np.isfinite(low) and np.isfinite(high))):
        return False
    return (lo is None or low >= lo) and (hi is None or high <= hi)


def _where(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def require_values(name: str, values, *, lo: float | None = None, hi: float | None = None,
                   finite: bool = True, unit: str = "", hint: str = "") -> None:
    """Raise a UserError naming ``name``, the index and the value of the first bad element."""
    found = first_bad(values, finite, lo, hi)
    if found is None:
        return
    index, value = found
    if np.isnan(value):
        raise UserError(f"{_where(name, index)} is nan (not a number)")
    if np.isinf(value) and finite:
        raise UserError(f"{_where(name, index)} is {value}; every value must be finite")
    bounds = f"in [{lo:g}, {hi:g}]" if lo is not None and hi is not None else (f">= {lo:g}" if lo is not None
                                                                                 else f"<= {hi:g}")
    raise UserError(f"{_where(name, index)} = {value:g}{unit} is out of range (must be {bounds}){hint}")


def check_tensors(named: Iterable[tuple[str, object]], path: str | Path | None = None) -> None:
    """Every floating tensor/array of ``named`` (e.g. a state dict) is finite."""
    for name, value in named:
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if arr.dtype.kind == "f" and arr.size:
            try:
                require_values(name, arr)
            except UserError as exc:
                raise UserError(exc.problem, path) from None


def check_netx_layer(where: str, group, path: str | Path, *, clip_weights: bool = False) -> None:
    """Raw values (Loihi integers) of one netx layer group: finite and inside Loihi's weight, bias, delay, decay
    and threshold ranges; with ``clip_weights`` weights outside the 8-bit range pass (the reader clips them)."""
    import h5py

    def values(group, key: str):
        item = group.get(key)
        return np.asarray(item[()], dtype=np.float64) if isinstance(item, h5py.Dataset) else None

    hint = " (8-bit weights: a netx file stores Loihi integers; pass --clip-weights to clip knowingly)"
    bounds = {"weight": WEIGHT_RANGE, "weight_rec": WEIGHT_RANGE, "bias": BIAS_RANGE, "delay": (0, None)}
    neuron = group.get("neuron")
    if isinstance(neuron, h5py.Group):
        bounds.update({"neuron/iDecay": (0, DECAY_UNITY), "neuron/vDecay": (0, DECAY_UNITY),
                       "neuron/vThMant": (0, MAX_VTH_MANT)})
    try:
        for key, (lo, hi) in bounds.items():
            arr = values(group, key)
            if arr is None:
                continue
            if clip_weights and key.startswith("weight"):
                require_values(f"{where}/{key}", arr)
            else:
                require_values(f"{where}/{key}", arr, lo=lo, hi=hi, hint=hint if key.startswith("weight") else "")
    except UserError as exc:
        raise UserError(exc.problem, path) from None


def check_spikes(x: np.ndarray, path: str | Path | None, *, signed: bool = False) -> np.ndarray:
    """Input spikes must be finite and non-negative (``signed``: graded inputs, any finite value)."""
    try:
        require_values("input spikes", x, lo=None if signed else 0)
    except UserError as exc:
        raise UserError(exc.problem, path) from None
    return x


# -------------------------------------------------------------------------------------------------- graphs


def known_nir_types() -> set[str]:
    import nir

    return {name for name in dir(nir) if isinstance(getattr(nir, name), type)
            and issubclass(getattr(nir, name), nir.NIRNode)} - {"NIRNode"}


def check_nir_file(path: str | Path) -> Path:
    """A ``.nir`` file: HDF5, bounded datasets, and only node types the nir library knows (checked unread)."""
    import h5py

    path = require_file(path, "nir")
    check_hdf5(path)
    known = known_nir_types()
    with h5py.File(path, "r") as f:
        if "node" not in f:
            raise UserError("not a NIR file (no 'node' group)", path)
        unknown: list[str] = []

        def visit(name: str, obj) -> None:
            if name.endswith("/type") and isinstance(obj, h5py.Dataset):
                value = obj[()]
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                if text not in known:
                    unknown.append(f"{name.rsplit('/', 1)[0]} has type {text!r}")

        f["node"].visititems(visit)
    if unknown:
        raise UserError(f"unknown NIR node type: {unknown[0]} (known: {', '.join(sorted(known))})", path)
    return path


def check_graph(graph, path: str | Path | None = None) -> None:
    """A NIR graph: edges between existing nodes, finite parameters, no zero-size node, no non-recurrent cycle."""
    try:
        _check_graph(graph, "")
    except UserError as exc:
        raise UserError(exc.problem, path) from None


def _check_graph(graph, prefix: str) -> None:
    import nir

    nodes = graph.nodes
    for a, b in graph.edges:
        for end in (a, b):
            if end not in nodes:
                raise UserError(f"edge ({prefix}{a!r}, {prefix}{b!r}) names node {prefix}{end!r}, which the graph "
                                "does not have")
    for key, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            _check_graph(node, f"{prefix}{key}.")
            continue
        _check_node(f"{prefix}{key}", node)
    cycle = _cycle(graph)
    if cycle:
        raise UserError(f"the graph has a cycle {' -> '.join(prefix + c for c in cycle)}; only a recurrent loop "
                        "through one weight node (neuron -> Linear/Affine -> same neuron) is supported")


def _check_node(key: str, node) -> None:
    for attr, value in vars(node).items():
        if attr in ("metadata", "input_type", "output_type") or isinstance(value, (str, dict)) or value is None:
            continue
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            continue
        if arr.size == 0 or 0 in arr.shape:
            raise UserError(f"node {key!r} {attr} is empty (shape {arr.shape}): a zero-size layer")
        # +inf thresholds mark voltage read-outs and +inf time constants "no decay" in other tools' graphs;
        # NaN, -inf and an infinite weight are never meaningful
        if attr in INFINITE_OK:
            require_values(f"node {key!r} {attr}", arr, finite=False, lo=0)
        elif attr == "w_in" and _inf_only_where_tau_syn_is(node, arr):
            require_values(f"node {key!r} {attr}", np.where(np.isposinf(arr), 0.0, arr))
        else:
            require_values(f"node {key!r} {attr}", arr)
    for attr in ("input_type", "output_type"):
        if attr == "output_type" and type(node).__name__ == "Conv2d":
            # nir infers a Conv2d's output from the kernel's height on both axes (1.0.8 and its main branch), so a
            # non-square kernel's width is wrong there: the reader computes conv shapes itself and checks them
            continue
        for port, shape in (getattr(node, attr, None) or {}).items():
            dims = np.asarray(shape).reshape(-1)
            if dims.dtype.kind in "iuf" and dims.size and np.any(dims <= 0):  # unknown dims may be None
                raise UserError(f"node {key!r} {attr.split('_')[0]} {port!r} has shape {tuple(dims)}: "
                                "a zero-size layer")


def _inf_only_where_tau_syn_is(node, w_in: np.ndarray) -> bool:
    """A CubaLIF current that never decays (``tau_syn`` = +inf) reaches its input with factor one only through
    ``w_in = tau_syn / dt`` = +inf: NIR has no finite parameters for it (netx's read-out layer, docs/export.md)."""
    tau = getattr(node, "tau_syn", None)
    if tau is None or w_in.dtype.kind != "f":
        return False
    tau = np.broadcast_to(np.asarray(tau, dtype=np.float64), w_in.shape)
    return bool(np.all(np.isposinf(tau[np.isposinf(w_in)])))


def _is_weight(node) -> bool:
    import nir

    return isinstance(node, (nir.Linear, nir.Affine))


def _cycle(graph) -> list[str]:
    """Nodes of a cycle left after removing recurrent weight loops (a -> w -> a, w a weight node); [] if none."""
    succ: dict[str, set[str]] = {k: set() for k in graph.nodes}
    for a, b in graph.edges:
        succ[a].add(b)
    for a, b in graph.edges:  # drop the back edge of each neuron -> weight -> neuron loop
        if _is_weight(graph.nodes[b]) and a in succ[b] and succ[b] == {a}:
            succ[b].discard(a)
    indegree = {k: 0 for k in succ}
    for targets in succ.values():
        for b in targets:
            indegree[b] += 1
    ready = [k for k, d in indegree.items() if d == 0]
    while ready:
        for b in succ[ready.pop()]:
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    left = {k for k, d in indegree.items() if d > 0}
    if not left:
        return []
    pred = {k: sorted(a for a in left if k in succ[a]) for k in left}
    path, node = [], min(left)
    while node not in path:  # every leftover node has a leftover predecessor: walking back must close a loop
        path.append(node)
        node = pred[node][0]
    loop = path[path.index(node):] + [node]
    return loop[::-1]
