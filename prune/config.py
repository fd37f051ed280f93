"""Method configuration: frozen dataclasses with the spec's proposed defaults, read from YAML with clear errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snndeploy.errors import UserError
from snndeploy.prune.criticality import KERNELS
from snndeploy.prune.distill import LABEL_LOSSES, OBJECTIVES
from snndeploy.prune.engine import ALLOCATIONS, SCOPES
from snndeploy.prune.schedules import SCHEDULES
from snndeploy.prune.scores import CHANNEL_NORMS
from snndeploy.yaml_io import read_yaml

LR_RULES = ("auto", "absolute", "relative")
LR_DECAYS = ("none", "final")


@dataclass(frozen=True)
class PruneConfig:
    """Hyperparameters shared by every method (each method's class sets its own defaults)."""

    schedule: str = "one_shot"  # one_shot | cubic | linear | iterative
    steps: int = 1  # pruning steps (cubic / linear)
    rate: float = 0.2  # iterative: fraction of the remaining weights removed per step
    epochs_per_step: int = 1  # fine-tuning epochs after each pruning step
    lr: float = 1e-3  # fine-tuning learning rate (Adam)
    scope: str = "global"  # structured: global | layer ranking of channels
    # unstructured: how the weight budget is shared among layers (erk | global | layer; snndeploy.prune.engine)
    allocation: str = "erk"
    include: tuple[str, ...] = ()  # layer names (blocks.2) or kinds (dense, conv); fnmatch patterns
    exclude: tuple[str, ...] = ()
    exclude_first: bool = False
    exclude_last: bool = False
    min_channels: int = 1  # structured: channels every layer keeps
    min_width: float = 0.1  # structured: share of its channels every layer keeps (with min_channels: the larger)
    channel_norm: str = "layer"  # structured, global scope: scores divided by their layer's mean (layer) | none
    seed: int = 0
    eval_each_step: bool = True
    # fine-tuning objective of every method (snndeploy.prune.distill): distillation from the dense network + labels
    objective: str = "distill"  # distill | label
    distill_weight: float = 0.5  # share of the distillation term (the label loss gets the rest)
    # softmax temperature on output counts (spikes summed over time); not Deep R's noise `temperature`
    distill_temperature: float = 2.0
    # auto: the checkpoint's own training loss; none for an imported network (pure distillation) | cross_entropy | ...
    label_loss: str = "auto"
    # after the first pruning step, every pruned layer's weights times this (1: off). An imported network whose
    # neurons are driven far beyond threshold (lava-dl's mnist-mlp-128) fine-tunes far faster scaled down: see
    # docs/prune.md "drive_limit and rescale" (drive_limit does it when a network needs it)
    rescale: float = 1.0
    # after the first step that removes weights, if a pruned spiking layer's median |v - theta| exceeds this many
    # thresholds, every pruned layer's weights are scaled by limit / that drive, once (0: off; snndeploy.prune.drive)
    drive_limit: float = 10.0
    # how Adam's rates are set (docs/prune.md "Learning rate"): absolute (every parameter at lr) | relative (each
    # pruned layer at relative_lr x the RMS of its live weights when the optimizer is made, the rest at lr) | auto
    # (relative for an imported network, whose training is unknown; absolute for a checkpoint that records its own)
    lr_rule: str = "auto"
    relative_lr: float = 0.016
    # none: every round fine-tunes at its rates | final: the last round's fine-tuning anneals every rate to 0 along a
    # cosine, optimizer step by optimizer step (docs/prune.md "Annealing the last round")
    lr_decay: str = "none"
    # unstructured: after every pruning step, move the kept weights that lie on no input-to-output path (into a
    # neuron that reaches no output, out of one nothing reaches) to the largest pruned weights on live paths of the
    # same layer; the sparsity stays (snndeploy.prune.paths, docs/prune.md "Ineffective weights")
    reassign_ineffective: bool = False
    # after every pruning step (not a rewinding one), refit the kept weights by ridge least squares so that each pruned
    # layer's synaptic currents on reconstruct_batches training batches stay what the network computed just before
    # the step (snndeploy.prune.reconstruct, docs/prune.md "Refitting the kept weights"); damping: the ridge's share
    # of the inputs' mean power, pulling towards the old values
    reconstruct: bool = False
    reconstruct_batches: int = 8
    reconstruct_damping: float = 0.01
    # a method's magnitude cut (one-shot magnitude, each GMP step, criticality's over-prune, SET / RigL / Deep R's
    # first cut of a trained network) taken in this many sub-steps without training, each keeping the same share of
    # every layer's weights, reassigning stranded weights and refitting on reconstruct_batches batches
    # (snndeploy.prune.descent, docs/prune.md "Cutting in sub-steps"); 1: one cut
    cut_substeps: int = 1


@dataclass(frozen=True)
class CriticalityConfig(PruneConfig):
    """Chen et al. 2023 pruning-regeneration; defaults are the spec's proposed ones (section 7, items 1-4)."""

    schedule: str = "cubic"
    steps: int = 5
    # a fraction (0.25): each step fine-tunes on the next quarter of an epoch (snndeploy.prune.finetune's window)
    epochs_per_step: float = 40
    delta: float = 0.5  # over-prune margin as a fraction of this step's sparsity increase
    max_overprune: float = 0.5  # cap: over-pruning removes at most this share of the weights live at the target
    regen: str = "criticality"  # criticality | gradient | random | none (ablations)
    # per-weight criticality: post_rate_magnitude (C_i x pre-synaptic rate x |w|: +2.4 / +3.8 / +7.5 pp over post_rate
    # at 90 / 95 / 98 % on lava-dl's mnist-mlp-128, docs/prune.md) | post_rate (C_i x pre rate; the spec's variant) |
    # post (C_i, ties by |w|; the spec's proposal, which collapses mnist-mlp-128 at 98 %) | post_share | post_magnitude
    weight_score: str = "post_rate_magnitude"
    reassign_ineffective: bool = True  # docs/prune.md "Defaults of the prune-and-fine-tune methods"
    # 5: each step's over-prune in refitted sub-steps; with post_rate_magnitude +0.2 / +0.5 pp at 90 / 95 % on
    # mnist-mlp-128 but -1 pp at 90 % on bootstrap MNIST, where the regrowth restores half the kept weights onto
    # refitted ones (docs/prune.md)
    cut_substeps: int = 1
    kernel: str = "atan"  # near-threshold kernel on (v - theta) / theta
    alpha: float = 2.0
    calib_batches: int = 10  # training batches for criticality (and gradient) estimates
    regrow_init: str = "restore"  # restore pre-pruning values | zero
    channel_score: str = "gate_l1"  # structured prune criterion: gate | gate_l1 (|gate| * mean |W[c]|)
    l1: float = 0.0  # structured: L1 penalty on channel gates during fine-tuning (network slimming style)


@dataclass(frozen=True)
class MagnitudeConfig(PruneConfig):
    """One-shot global magnitude pruning, then fine-tuning."""

    epochs_per_step: float = 10
    cut_substeps: int = 5  # one cut to 95-98 % silences a trained network (docs/prune.md "Cutting in sub-steps")
    # magnitude strands weights and leaves currents far from the dense ones at high sparsity: both repairs on
    # (docs/prune.md "Defaults of the prune-and-fine-tune methods")
    reassign_ineffective: bool = True
    reconstruct: bool = True


@dataclass(frozen=True)
class GMPConfig(PruneConfig):
    """Gradual magnitude pruning (Zhu & Gupta 2017): cubic schedule, fine-tuning between steps."""

    schedule: str = "cubic"
    steps: int = 5
    epochs_per_step: float = 2
    reassign_ineffective: bool = True  # as MagnitudeConfig
    reconstruct: bool = True
    cut_substeps: int = 5  # each step's cut in refitted sub-steps (docs/prune.md "Cutting in sub-steps")


@dataclass(frozen=True)
class IMPConfig(PruneConfig):
    """Iterative magnitude pruning with rewinding (lottery ticket): 20 % of the remaining weights per round."""

    schedule: str = "iterative"
    rate: float = 0.2
    epochs_per_step: int = 10  # training epochs per round (Frankle et al.: a full training run)
    # epoch: the lottery ticket with rewinding (Frankle et al. 2020): train the architecture from a fresh init for
    # dense_epochs, keep the iterate after rewind_epoch epochs, rewind the survivors to it after every pruning round;
    # init: rewind to the fresh init (Frankle & Carbin 2019); start: to the model as loaded; none: no rewinding
    rewind: str = "epoch"
    rewind_epoch: int = 1
    dense_epochs: int = 0  # dense training from init (init, epoch); 0: epochs_per_step
    dense_lr: float = 1e-3  # learning rate of that dense training (a fresh init needs a training-sized rate)
    lr_rule: str = "absolute"  # each round retrains a rewound early iterate: a training-sized rate, not a nudge


@dataclass(frozen=True)
class RandomConfig(PruneConfig):
    epochs_per_step: float = 10


@dataclass(frozen=True)
class SlimmingConfig(PruneConfig):
    """Network slimming on channel gates: L1-penalised training, prune the smallest gates, fine-tune."""

    l1: float = 1e-4
    sparsity_epochs: int = 5
    epochs_per_step: int = 5


@dataclass(frozen=True)
class L1FilterConfig(PruneConfig):
    """L1-norm filter pruning (Li et al. 2017): per-layer smallest ||W[c]||_1, then fine-tune."""

    scope: str = "layer"
    epochs_per_step: int = 5


CHOICES: dict[str, tuple[str, ...]] = {
    "schedule": SCHEDULES, "scope": SCOPES, "allocation": ALLOCATIONS,
    "regen": ("criticality", "gradient", "random", "none"),
    "kernel": KERNELS, "weight_score": ("post", "post_share", "post_magnitude", "post_rate", "post_rate_magnitude"),
    "regrow_init": ("restore", "zero"), "channel_score": ("gate", "gate_l1"),
    "rewind": ("epoch", "init", "start", "none"),
    "objective": OBJECTIVES, "channel_norm": CHANNEL_NORMS, "label_loss": LABEL_LOSSES, "lr_rule": LR_RULES,
    "lr_decay": LR_DECAYS,
}
RANGES: dict[str, tuple[float, float]] = {
    "steps": (1, 1000), "rate": (1e-6, 0.999), "epochs_per_step": (0, 100000), "lr": (1e-12, 10.0),
    "min_channels": (1, 1 << 20), "delta": (0.0, 10.0), "max_overprune": (0.0, 1.0),
    "alpha": (1e-6, 1e6), "calib_batches": (1, 100000),
    "l1": (0.0, 10.0), "sparsity_epochs": (0, 100000),
    "rewind_epoch": (0, 100000), "dense_epochs": (0, 100000), "dense_lr": (1e-12, 10.0),
    "distill_weight": (0.0, 1.0), "min_width": (0.0, 1.0), "distill_temperature": (1e-3, 1e3),
    "temperature": (0.0, 1e3), "rescale": (1e-6, 1e3),
    "drive_limit": (0.0, 1e6), "relative_lr": (1e-9, 1.0),
    "reconstruct_batches": (1, 100000), "reconstruct_damping": (1e-9, 1e6), "cut_substeps": (1, 1000),
}


def config_from_dict(cls: type, data: Mapping[str, Any] | None, where: str | Path | None = None) -> PruneConfig:
    """A validated config of class ``cls``; unknown keys, wrong types and out-of-range values are UserErrors."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown method config key(s) {', '.join(map(str, unknown))}; known: {', '.join(fields)}",
                        where)
    values = {}
    own = getattr(cls, "choices", {})  # a config class may widen or narrow a key's choices (e.g. pq's scope)
    for key, value in data.items():
        values[key] = _coerce(key, value, getattr(cls(), key), where, own.get(key),
                              fractional=fields[key].type == "float")
    try:
        return cls(**values)
    except UserError as exc:  # cross-key checks in a class's __post_init__: name the file
        raise UserError(exc.problem, where) from exc


def _coerce(key: str, value: Any, default: Any, where: str | Path | None,
            choices: tuple[str, ...] | None = None, fractional: bool = False) -> Any:
    """``value`` checked against ``default``'s type; ``fractional``: a key declared float whose default is a whole
    number (epochs_per_step) takes fractions too."""
    def bad(expect: str) -> UserError:
        return UserError(f"method config '{key}' must be {expect}, got {value!r}", where)

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad("a list of layer names or kinds")
        return tuple(value)
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        whole = float(value).is_integer()
        if isinstance(default, int) and not fractional and not whole:
            raise bad("an integer")
        lo, hi = RANGES.get(key, (float("-inf"), float("inf")))
        if not lo <= value <= hi:
            raise bad(f"within [{lo:g}, {hi:g}]")
        return int(value) if isinstance(default, int) and whole else float(value)
    if isinstance(default, str):
        choices = choices or CHOICES.get(key)
        if not isinstance(value, str) or (choices and value not in choices):
            raise bad("one of " + ", ".join(choices) if choices else "a string")
        return value
    return value


def load_config(cls: type, path: str | Path | None) -> PruneConfig:
    """Read a method config YAML (a mapping of the method's keys); None gives the defaults."""
    if path is None:
        return cls()
    path = Path(path)
    data = read_yaml(path, "method config")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UserError("a method config must be a YAML mapping of keys to values", path)
    return config_from_dict(cls, data, path)


def config_to_dict(config: PruneConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def with_lr_rule(config: PruneConfig, imported: bool) -> PruneConfig:
    """``config`` with ``lr_rule: auto`` made concrete: relative for an imported network, absolute for our own."""
    if config.lr_rule != "auto":
        return config
    return dataclasses.replace(config, lr_rule="relative" if imported else "absolute")


def with_scope(method_name: str, config: PruneConfig, scope: str | None) -> PruneConfig:
    """``config`` with its ``scope`` replaced by the CLI's ``--scope`` (checked like a config-file key)."""
    if scope is None:
        return config
    try:
        return config_from_dict(type(config), {**config_to_dict(config), "scope": scope})
    except UserError as exc:
        raise UserError(f"--scope {scope} does not fit --method {method_name}: {exc.problem}") from exc
