"""The pipeline's YAML config as frozen dataclasses, validated with one-line errors naming the file and key."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from snndeploy import settings
from snndeploy.data.datasets import dataset_info
from snndeploy.errors import UserError
from snndeploy.fit import parse_fit
from snndeploy.hardware.budget import parse_budget
from snndeploy.hardware.profile import load_profile
from snndeploy.loader import model_format
from snndeploy.models.spec import load_spec, spec_from_dict
from snndeploy.prune.config import config_from_dict as prune_config_from_dict
from snndeploy.prune.registry import find_method
from snndeploy.train.loop import LR_SCHEDULES, TrainConfig
from snndeploy.train.run import ENCODINGS, LOSS_CHOICES
from snndeploy.yaml_io import parse_yaml, read_yaml

DEFAULT_CONFIG = "pipeline_default.yaml"
FIXTURES_PREFIX = "fixtures:"


def resolve_load(load: str) -> Path:
    """A model file to load; ``fixtures:REL`` is ``REL`` in the fixtures folder (lava-dl's trained networks)."""
    if load.startswith(FIXTURES_PREFIX):
        return settings.fixtures_dir() / load[len(FIXTURES_PREFIX):]
    return Path(load)


@dataclass(frozen=True)
class ModelStage:
    """Where the dense model comes from: ``spec`` (inline mapping or YAML path) trained here, or ``load`` a file.

    The other keys are ``snndeploy train``'s options (:class:`snndeploy.train.run.TrainJob`)."""

    spec: Any = None
    load: str | None = None
    epochs: int = 2
    subset: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    encoding: str | None = None  # None: what the model records, else rate
    max_rate: float = 1.0
    val_fraction: float = 0.1
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    loss: str = "auto"
    true_rate: float = 0.2
    false_rate: float = 0.03
    threads: int = 2
    device: str = "auto"

    def train_options(self) -> dict[str, Any]:
        """The keys that are TrainJob fields (everything but where the model comes from)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("spec", "load")}


@dataclass(frozen=True)
class PruneStage:
    """``snndeploy prune``'s options; ``config`` holds the method's keys (``--config``; ``scope`` and ``alpha`` too,
    which the command also takes as ``--scope``/``--alpha``)."""

    method: str = "criticality"
    sparsity: float = 0.9
    structured: bool = False
    config: dict = field(default_factory=dict)  # the method's hyperparameters (snndeploy prune --config)
    subset: int | None = None
    test_subset: int | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class ExportStage:
    formats: tuple[str, ...] = ("nir", "netx")


@dataclass(frozen=True)
class VerifyStage:
    samples: int = 100
    precision: str = "fixed_pt"


@dataclass(frozen=True)
class SimulateStage:
    # simulate 500 / verify 100: their Lava runs took 19 s / 17 s on a dense 784-512-512-10 (an upper bound for the
    # demo's pruned MLP) at load 10-12 on 2 cores (benchmarks/stage_times.py, docs/benchmarks.md "Simulate")
    samples: int = 500
    precision: str = "fixed_pt"


@dataclass(frozen=True)
class EstimateStage:
    targets: tuple[str, ...] = ("loihi2",)
    budget: str | None = None  # "cores=N", "chips=N" or a budget YAML file


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    data: str
    model: ModelStage
    prune: PruneStage | None = field(default_factory=PruneStage)
    export: ExportStage = field(default_factory=ExportStage)
    verify: VerifyStage = field(default_factory=VerifyStage)
    simulate: SimulateStage = field(default_factory=SimulateStage)
    estimate: EstimateStage = field(default_factory=EstimateStage)
    fit: str | None = None  # "loihi2:cores=N": search the sparsity or width that fits, then prune to it
    seed: int = 0
    test_subset: int | None = 1000  # test samples for the dense model's accuracy


SECTIONS = {"model": ModelStage, "prune": PruneStage, "export": ExportStage, "verify": VerifyStage,
            "simulate": SimulateStage, "estimate": EstimateStage}
TOP_LEVEL = {"name", "data", "seed", "fit", "test_subset", *SECTIONS}


def _section(cls: type, raw: Any, key: str, where: Path | str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise UserError(f"'{key}' must be a mapping, got {type(raw).__name__}", where)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"unknown key(s) in '{key}': {', '.join(unknown)}; known: {', '.join(sorted(known))}", where)
    values = {k: tuple(v) if isinstance(v, list) and k in ("formats", "targets") else v for k, v in raw.items()}
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        _require_type(f"{key}.{name}", value, hints[name], where)
    return cls(**values)


def _allowed(hint: Any) -> tuple[type, ...]:
    """The runtime types a field annotation admits (``Any``: every type)."""
    if hint is Any:
        return (object,)
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in args for t in _allowed(arg))
    origin = typing.get_origin(hint) or hint
    return (int, float) if origin is float else (origin,)


def _require_type(key: str, value: Any, hint: Any, where: Path | str) -> None:
    """A one-line error for a value of the wrong type (a bool is not a number) or a non-finite number."""
    allowed = _allowed(hint)
    wrong = not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed
                                                and object not in allowed)
    if wrong:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise UserError(f"'{key}' must be {names}, got {value!r}", where)
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"'{key}' must be a finite number, got {value!r}", where)
    if isinstance(value, tuple) and not all(isinstance(v, str) for v in value):
        raise UserError(f"'{key}' must be a list of names, got {list(value)!r}", where)


def _check(config: PipelineConfig, where: Path | str) -> None:
    model = config.model
    if (model.spec is None) == (model.load is None):
        raise UserError("'model' needs exactly one of 'spec' (train it here) or 'load' (a trained model file)", where)
    positive = {"model.epochs": model.epochs, "model.batch_size": model.batch_size,
                "verify.samples": config.verify.samples, "simulate.samples": config.simulate.samples}
    for key, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise UserError(f"'{key}' must be a whole number >= 1, got {value!r}", where)
    if config.prune is not None and not 0.0 <= float(config.prune.sparsity) < 1.0:
        raise UserError(f"'prune.sparsity' must be in [0, 1), got {config.prune.sparsity!r}", where)
    bad_formats = sorted(set(config.export.formats) - {"nir", "netx", "onnx"})
    if bad_formats:  # the Lava network is always built from the NIR file (verify, simulate)
        raise UserError(f"unknown export format(s) {bad_formats}; choose from nir, netx, onnx", where)
    for precision in (config.verify.precision, config.simulate.precision):
        if precision not in ("fixed_pt", "floating_pt"):
            raise UserError(f"precision must be fixed_pt or floating_pt, got {precision!r}", where)
    if config.fit is not None and ":" not in config.fit:
        raise UserError(f"'fit' must look like loihi2:cores=N, got {config.fit!r}", where)
    if config.fit is not None and config.prune is None:
        raise UserError("'fit' prunes to a budget: it needs a 'prune' section (the method to prune with)", where)


def check_names(config: PipelineConfig, where: Path | str) -> None:
    """Everything that names something (dataset, method and its config, targets, budgets, train options) resolves,
    so a typo fails before anything runs or is written."""
    model = config.model
    checks: list[tuple[str, Any]] = [
        ("data", lambda: dataset_info(config.data)),
        ("model.spec", lambda: isinstance(model.spec, str) and load_spec(model.spec)),
        ("model.spec", lambda: isinstance(model.spec, dict) and spec_from_dict(model.spec)),
        ("model.load", lambda: model.load and model_format(resolve_load(model.load))),
        ("model", lambda: _check_train_options(config.model)),
        ("estimate.targets", lambda: [load_profile(t) for t in config.estimate.targets]),
        ("estimate.budget", lambda: config.estimate.budget and parse_budget(config.estimate.budget)),
        ("fit", lambda: config.fit and parse_fit(config.fit)),
    ]
    if config.prune is not None:
        checks += [("prune.method", lambda: _check_method(config.prune)),
                   ("prune.config", lambda: _check_method_config(config.prune, config.seed))]
    for key, check in checks:
        try:
            check()
        except UserError as exc:
            raise UserError(f"'{key}': {exc.problem}", where) from None


def _check_train_options(model: ModelStage) -> None:
    choices = {"encoding": (model.encoding, (None, *ENCODINGS)), "loss": (model.loss, LOSS_CHOICES),
               "lr_schedule": (model.lr_schedule, LR_SCHEDULES)}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise UserError(f"{key} must be one of {', '.join(v for v in allowed if v)}, got {value!r}")
    loss = "spike_rate" if model.loss == "auto" else model.loss
    TrainConfig(epochs=model.epochs, batch_size=model.batch_size, lr=model.lr, weight_decay=model.weight_decay,
                lr_schedule=model.lr_schedule, loss=loss, true_rate=model.true_rate, false_rate=model.false_rate,
                threads=model.threads, device=model.device)


def _check_method(prune: PruneStage) -> None:
    method = find_method(prune.method)
    if method.structured is False and prune.structured:
        raise UserError(f"method {method.name} has no structured mode")


def _check_method_config(prune: PruneStage, seed: int) -> None:
    prune_config_from_dict(find_method(prune.method).config_class, {"seed": seed, **prune.config})


def config_from_dict(raw: Any, where: Path | str = "<config>") -> PipelineConfig:
    if not isinstance(raw, dict):
        raise UserError("a pipeline config must be a YAML mapping", where)
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TOP_LEVEL))}", where)
    for key in ("name", "data", "model"):
        if key not in raw:
            raise UserError(f"missing key '{key}'", where)
    hints = typing.get_type_hints(PipelineConfig)
    for key in TOP_LEVEL - set(SECTIONS):
        if key in raw and key not in ("name", "data"):  # name and data: any scalar, read as text
            _require_type(key, raw[key], hints[key], where)
    try:
        sections = {key: _section(cls, raw.get(key), key, where) for key, cls in SECTIONS.items()}
        if "prune" in raw and raw["prune"] is None:
            sections["prune"] = None  # 'prune: null' = keep the dense model
        config = PipelineConfig(name=str(raw["name"]), data=str(raw["data"]), seed=int(raw.get("seed", 0)),
                                fit=raw.get("fit"), test_subset=raw.get("test_subset", 1000), **sections)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad value: {exc}", where) from None
    _check(config, where)
    return config


def load_pipeline_config(path: str | Path | None) -> tuple[PipelineConfig, str]:
    """The config at ``path`` (or the embedded default) and where it came from."""
    if path is None:
        where = f"<embedded default {DEFAULT_CONFIG}>"
        raw = parse_yaml(resources.files("snndeploy").joinpath(DEFAULT_CONFIG).read_text(), where, "pipeline config")
    else:
        where = str(path)
        raw = read_yaml(path, "pipeline config")
    config = config_from_dict(raw, where)
    if path is not None and isinstance(config.model.spec, str) and not Path(config.model.spec).is_absolute():
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, spec=str((Path(path).parent / config.model.spec).resolve())))
    if path is not None and config.model.load and not config.model.load.startswith(FIXTURES_PREFIX) \
            and not Path(config.model.load).is_absolute():
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, load=str((Path(path).parent / config.model.load).resolve())))
    check_names(config, where)
    return config, where


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
