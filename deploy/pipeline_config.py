"""The pipeline's YAML config as frozen dataclasses, validated with one-line errors naming the file and key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from snndeploy.errors import UserError
from snndeploy.yaml_io import parse_yaml, read_yaml

DEFAULT_CONFIG = "pipeline_default.yaml"


@dataclass(frozen=True)
class ModelStage:
    """Where the dense model comes from: ``spec`` (inline mapping or YAML path) trained here, or ``load`` a file."""

    spec: Any = None
    load: str | None = None
    epochs: int = 2
    subset: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    encoding: str | None = None  # None: what the model records, else rate


@dataclass(frozen=True)
class PruneStage:
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
    samples: int = 1000
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
    return cls(**values)


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


def config_from_dict(raw: Any, where: Path | str = "<config>") -> PipelineConfig:
    if not isinstance(raw, dict):
        raise UserError("a pipeline config must be a YAML mapping", where)
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TOP_LEVEL))}", where)
    for key in ("name", "data", "model"):
        if key not in raw:
            raise UserError(f"missing key '{key}'", where)
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


def load_config(path: str | Path | None) -> tuple[PipelineConfig, str]:
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
    if path is not None and config.model.load and not Path(config.model.load).is_absolute():
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, load=str((Path(path).parent / config.model.load).resolve())))
    return config, where


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
