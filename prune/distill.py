"""The fine-tuning objective every pruning method trains with: distillation from the dense network plus a label loss.

Why: a trained network brought in from elsewhere (a lava-dl netx file, a NIR graph) arrives without the loss it was
trained with. Fine-tuning it with another loss (SLAYER's SpikeRate targets, say) first drags its outputs towards that
loss's targets and costs accuracy before pruning has removed anything: lava-dl's mnist-mlp-128 went from 95.6 % to
64.6 % in one epoch at sparsity 0.01. Distilling from the dense network's own outputs asks the pruned network to keep
doing what it did; the label loss corrects what the dense network got wrong.

With ``z`` the output summed over time (spike counts; summed voltages of an affine read-out), teacher ``t`` the dense
network as it was before pruning (frozen, run on the same input batch) and student ``s`` the network being pruned::

    loss = w * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - w) * label_loss(s, y)

per sample (batch mean), ``w = distill_weight``, ``T = distill_temperature`` (in output units: spikes for spiking
outputs).
``label_loss: auto`` is the network's own training loss when its checkpoint records it; an imported network, whose
training loss is unknown, gets none (``w = 1``, pure distillation). Why: at sparsity 0 the distillation gradient is
exactly zero, so any label term alone moves the network, and Adam scales its step to ``lr`` whatever its weight:
count cross-entropy at ``w = 0.5`` took lava-dl's ``mnist-mlp-128`` down 1.4-3.0 pp in one epoch (docs/prune.md).
``label_loss: cross_entropy`` adds cross-entropy on ``z_s``; ``objective: label`` trains on the label loss alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from snndeploy.models.checkpoint import SUFFIXES as CHECKPOINT_SUFFIXES
from snndeploy.models.checkpoint import load_checkpoint
from snndeploy.train.loop import TrainConfig, make_loss

OBJECTIVES = ("distill", "label")
LABEL_LOSSES = ("auto", "cross_entropy", "spike_rate", "spike_max")


def logits(output: torch.Tensor) -> torch.Tensor:
    """``[N, classes]``: an output ``[N, *shape, T]`` summed over time."""
    return output.reshape(output.shape[0], -1, output.shape[-1]).sum(-1)


def count_cross_entropy(output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on spike counts (batch mean): the label loss when the network's own one is unknown."""
    return F.cross_entropy(logits(output), label)


def recorded_training(path: str | Path) -> TrainConfig | None:
    """The training settings a snndeploy checkpoint records (None for netx, NIR, specs and foreign files)."""
    path = Path(path)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        return None
    config = load_checkpoint(path).get("extra", {}).get("config")
    if not isinstance(config, dict) or "loss" not in config:
        return None
    keys = ("loss", "true_rate", "false_rate")
    return TrainConfig(**{k: config[k] for k in keys if k in config})


def label_loss(name: str, recorded: TrainConfig | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """A per-sample (batch-mean) label loss: ``auto`` is the recorded training loss, else None (no label term)."""
    if name == "auto":
        if recorded is None:
            return None
        config = recorded
    elif name == "cross_entropy":
        return count_cross_entropy
    else:
        config = TrainConfig(loss=name)
    summed = make_loss(config)  # lava-dl's losses sum over the batch
    return lambda output, label: summed(output, label) / output.shape[0]


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 KL(softmax(teacher / T) || softmax(student / T))`` (batch mean), whose gradient is exactly zero where
    the student's logits equal the teacher's.

    Why: autograd of ``F.kl_div`` leaves rounding residue (~1e-8) at equal outputs, and Adam divides every
    gradient by its own running RMS, so that residue became full ``lr``-sized steps in random directions: one epoch
    of pure distillation at sparsity 0 and lr 1e-2 took lava-dl's mnist-mlp-128 from 95.6 % to 66.6 %. The
    gradient with respect to the student's logits is ``T (p_s - p_t) / N``; it is built from that difference.
    """
    t = temperature
    z = student / t
    with torch.no_grad():
        value = F.kl_div(F.log_softmax(z, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True,
                         reduction="batchmean") * t * t
        residual = F.softmax(z, dim=1) - F.softmax(teacher / t, dim=1)  # the same function: equal inputs give 0
    surrogate = (residual * z).sum() * t * t / z.shape[0]
    return value + surrogate - surrogate.detach()


class Objective:
    """``objective(output, label, x)``: the fine-tuning loss of one batch (see the module docstring)."""

    def __init__(self, label: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], teacher: nn.Module | None = None,
                 weight: float = 0.5, temperature: float = 2.0):
        if teacher is not None and not temperature > 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}")
        self.label = label
        self.teacher = teacher
        self.weight = weight if teacher is not None else 0.0
        self.temperature = temperature
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        return logits(self.teacher(x))

    def __call__(self, output: torch.Tensor, label: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = self.label(output, label)
        if self.weight <= 0:
            return loss
        kd = distillation(logits(output), self.teacher_logits(x), self.temperature)
        return self.weight * kd + (1.0 - self.weight) * loss


def make_objective(config, net: nn.Module, recorded: TrainConfig | None = None) -> Objective:
    """The objective a prune config asks for; the teacher is a frozen copy of ``net`` as it is now (dense)."""
    label = label_loss(config.label_loss, recorded)
    if config.objective == "label" or config.distill_weight <= 0:
        return Objective(label or count_cross_entropy)
    teacher = copy.deepcopy(net)
    weight = config.distill_weight if label is not None else 1.0  # an imported network: pure distillation
    return Objective(label or count_cross_entropy, teacher, weight=weight, temperature=config.distill_temperature)
