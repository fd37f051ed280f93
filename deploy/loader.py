"""The one loader: any model file -> the trainable model (a SlayerNet), the IR (a LoihiNet), or both.

One suffix table (:data:`FORMATS`) and one wording for a missing or unknown file serve every command and the
pipeline:

=================  ==========  ==================================  ==================================
suffix             format      model                               IR
=================  ==========  ==================================  ==================================
.yaml .yml         spec        built with fresh weights            from the model
.pt .pth .ckpt     checkpoint  built, trained weights loaded       from the model
.net .h5 .hdf5     netx        SLAYER importer                     netx reader (every layer the IR has)
.nir               NIR         rebuilt from the IR                 NIR reader (the one place NIR is read)
=================  ==========  ==================================  ==================================

A folder holding ``network.nir`` (a Lava export) opens as that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from snndeploy import validate
from snndeploy.errors import UserError, naming
from snndeploy.export.ir import LoihiNet, is_sigma_delta
from snndeploy.export.netx_io import read_netx
from snndeploy.export.nir_io import read_nir
from snndeploy.export.slayer_io import from_slayer, to_slayer
from snndeploy.models import checkpoint
from snndeploy.models.build import SlayerNet, build_model, clipped_weight
from snndeploy.models.checkpoint import load_checkpoint, model_from_checkpoint
from snndeploy.models.netx_import import import_netx
from snndeploy.models.spec import load_spec

FORMATS: dict[str, str] = {
    ".yaml": "spec", ".yml": "spec",
    **{suffix: "checkpoint" for suffix in checkpoint.SUFFIXES},
    ".net": "netx", ".h5": "netx", ".hdf5": "netx",
    ".nir": "nir",
}
EXPORT_FOLDER_FILE = "network.nir"


@dataclass(frozen=True)
class Opened:
    """What :func:`open_model` read: the model and/or the IR (None where not asked for)."""

    path: Path
    format: str
    model: SlayerNet | None
    net: LoihiNet | None


def _expected() -> str:
    by_format: dict[str, list[str]] = {}
    for suffix, fmt in FORMATS.items():
        by_format.setdefault(fmt, []).append(suffix)
    return ", ".join(f"{fmt} ({' '.join(suffixes)})" for fmt, suffixes in by_format.items())


def model_format(path: str | Path) -> tuple[Path, str]:
    """The file to read (a Lava export folder's ``network.nir``) and its format; a one-line error otherwise."""
    path = Path(path)
    if path.is_dir():
        if not (path / EXPORT_FOLDER_FILE).is_file():
            raise UserError(f"not a snndeploy Lava export folder (no {EXPORT_FOLDER_FILE})", path)
        path = path / EXPORT_FOLDER_FILE
    if not path.is_file():
        raise UserError("model file not found", path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"unknown model file type {path.suffix or '(none)'!r}; expected {_expected()}", path)
    return path, fmt


def model_of_net(net: LoihiNet, path: Path) -> SlayerNet | LoihiNet:
    """The torch model rebuilt from an IR (read from ``path``) to verify against; a one-line error if it cannot be.
    A sigma-delta network is its own reference (:mod:`snndeploy.export.sdnn_ref`)."""
    if is_sigma_delta(net):
        return net
    try:
        return to_slayer(net)
    except UserError as exc:
        raise UserError(f"cannot rebuild a torch model for verification: {exc.problem}", path) from None


def _model(path: Path, fmt: str, clip_weights: bool = False) -> SlayerNet:
    """The model of a file; trained weights are checked finite (:func:`snndeploy.validate.check_tensors`) and,
    unless ``clip_weights``, inside what a quantized model computes with (:func:`_require_unclipped`)."""
    if fmt == "spec":
        return build_model(load_spec(validate.require_file(path, "spec")))
    if fmt == "checkpoint":
        model = model_from_checkpoint(load_checkpoint(path), path)
        validate.check_tensors(model.state_dict().items(), path)
        if not clip_weights:
            _require_unclipped(model, path)
    elif fmt == "netx":
        validate.check_hdf5(validate.require_file(path, "netx"))
        try:
            model = import_netx(path)
        except UserError as refused:
            model = _sdnn_model(path, refused)
    else:
        try:
            model = to_slayer(read_nir(path))
        except UserError as exc:
            raise UserError(exc.problem, path) from None
    validate.check_tensors(model.state_dict().items(), path)
    return model


def _require_unclipped(model: SlayerNet, path: Path) -> None:
    """A quantized checkpoint whose stored weight lava-dl's 8-bit pre-hook would clip is refused: the network
    that runs would differ from the one stored, without a word."""
    found = clipped_weight(model)
    if found is not None:
        name, index, stored, used = found
        raise UserError(f"{name}[{', '.join(map(str, index))}] = {stored:g} is outside the 8-bit weight range of "
                        f"a quantized model (it would run as {used:g}); export and verify take --clip-weights to "
                        "clip knowingly", path)


def _sdnn_model(path: Path, refused: UserError) -> SlayerNet:
    """A sigma-delta netx file as lava-dl sigma-delta blocks, through the netx reader (docs/sdnn.md); ``refused``
    (the SLAYER importer's error) for any other file."""
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


def _via_model(path: Path, fmt: str, dt: float | None, clip_weights: bool,
               need_model: bool, reset: str | None = None) -> tuple[SlayerNet | None, LoihiNet]:
    """The model and the IR that agree with it. NIR: the model is rebuilt from the IR; a netx file the SLAYER
    importer refuses (e.g. pooling) or whose weights are to be clipped is read as IR and the model rebuilt from it."""
    if fmt == "nir" or (fmt == "netx" and clip_weights):
        net = read_nir(path, dt=dt, reset=reset) if fmt == "nir" else read_netx(path, clip_weights=True)
        return (model_of_net(net, path) if need_model else None), net
    try:
        model = _model(path, fmt, clip_weights)
    except UserError as first:
        if fmt != "netx":
            raise
        try:
            net = read_netx(path)
        except UserError:
            raise first from None  # both readers refuse it: the importer's reason comes first
        return (model_of_net(net, path) if need_model else None), net
    return model, from_slayer(model)


def open_model(path: str | Path, *, model: bool = True, net: bool = False, via_model: bool = False,
               input_shape: tuple[int, ...] | None = None, dt: float | None = None,
               clip_weights: bool = False, reset: str | None = None) -> Opened:
    """Open any model file. ``model``/``net`` choose what to build. The IR of a netx file comes from the netx
    reader, or with ``via_model`` from the SLAYER model imported from it (what ``export`` and the estimator read,
    so that an export is verified against the same model). ``input_shape`` helps a netx file without an input
    layer whose first layer is a convolution; ``dt`` overrides a NIR file's time step; ``clip_weights`` clips
    netx weights outside Loihi's 8 bits (and accepts a quantized checkpoint's weights that its 8-bit pre-hook
    clips) instead of refusing the file; ``reset`` is the reset mechanism of a NIR graph's neurons where the graph
    does not record it (``export.nir_io.from_nir``)."""
    path, fmt = model_format(path)
    with naming(path):
        if net and (model or via_model or fmt in ("spec", "checkpoint")):
            built, ir = _via_model(path, fmt, dt, clip_weights, need_model=model, reset=reset)
            return Opened(path, fmt, built, ir)
        if net:
            ir = read_nir(path, dt=dt, reset=reset) if fmt == "nir" else read_netx(path, input_shape,
                                                                                  clip_weights=clip_weights)
            return Opened(path, fmt, None, ir)
        return Opened(path, fmt, _model(path, fmt, clip_weights), None)


def load_model(path: str | Path) -> SlayerNet:
    """The trainable model of any model file (a spec gives fresh weights, the others trained ones)."""
    return open_model(path).model  # type: ignore[return-value]


def load_net(path: str | Path, input_shape: tuple[int, ...] | None = None, dt: float | None = None,
             reset: str | None = None) -> LoihiNet:
    """The IR of any model file."""
    return open_model(path, model=False, net=True, input_shape=input_shape, dt=dt,  # type: ignore[return-value]
                      reset=reset).net
