"""Neuron and channel criticality from recorded membrane potentials (Chen et al., arXiv 2311.16141).

``C_i = mean over inputs and time of h((v_i[t] - theta) / theta)`` with a bell-shaped kernel ``h`` peaked at the
threshold. Sigma-delta (graded) neurons have no membrane threshold: their state is the pre-activation ``u = sigma +
bias`` and their switching point is the ReLU's kink at ``u = 0``, so their criticality is ``mean h(u / s)`` with
``s`` the layer's pre-activation standard deviation on the batch (docs/sdnn.md). SLAYER's own surrogate is far too
wide for this (its width is ``100 * tau_grad * theta``), so the kernel is explicit and configurable; the default, the
ATan derivative with alpha = 2, is the spec's proposed default (an assumption: the paper's exact formula could not be
checked)."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterable, Iterator

import torch
from lava.lib.dl.slayer.block import sigma_delta
from torch import nn

from snndeploy.prune.graph import reset_state

KERNELS = ("atan", "sigmoid", "gaussian")


def kernel(x: torch.Tensor, kind: str = "atan", alpha: float = 2.0) -> torch.Tensor:
    """Near-threshold kernel on the normalised distance ``x = (v - theta) / theta``; peak at ``x = 0``."""
    if kind == "atan":
        return (alpha / 2.0) / (1.0 + (math.pi * alpha * x / 2.0) ** 2)
    if kind == "sigmoid":
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1.0 - s)
    if kind == "gaussian":
        return torch.exp(-0.5 * (alpha * x) ** 2)
    raise ValueError(f"unknown criticality kernel {kind!r}; choose one of {', '.join(KERNELS)}")


@contextlib.contextmanager
def record_voltages(net: nn.Module, indices: Iterable[int],
                    on_voltage: Callable[[int, torch.Tensor], None]) -> Iterator[None]:
    """Call ``on_voltage(i, v)`` with the membrane potential of ``net.blocks[i]`` on every forward pass inside.

    A sigma-delta block reports its pre-activation (what reaches its activation); a sigma-delta read-out
    (lava-dl's ``Output``: synapse and sigma, no activation) reports its sigma, the value it sends.
    """
    undo: list[Callable[[], None]] = []
    for i in indices:
        block, neuron = net.blocks[i], net.blocks[i].neuron
        report = functools.partial(on_voltage, i)
        if isinstance(block, sigma_delta.Output):
            handle = neuron.sigma.register_forward_hook(lambda _m, _inp, out, report=report: report(out.detach()))
            undo.append(handle.remove)
        elif is_graded(neuron):
            neuron.activation = _Recorded(neuron.activation, report)
            undo.append(functools.partial(setattr, neuron, "activation", neuron.activation.activation))
        else:
            outer = neuron.__dict__.get("dynamics")  # a recording already in place (SCA's) keeps reporting

            def dynamics(z, neuron=neuron, report=report, outer=outer):
                current, voltage = outer(z) if outer is not None else type(neuron).dynamics(neuron, z)
                report(voltage.detach())
                return current, voltage

            neuron.dynamics = dynamics  # instance attribute shadows the method; removed (or the outer one put back)
            undo.append(functools.partial(_restore_dynamics, neuron, outer))
    try:
        yield
    finally:
        for step in undo:
            step()


def replay(net: nn.Module, indices: Iterable[int], batches: Iterable[torch.Tensor],
           on_voltage: Callable[[int, torch.Tensor], None]) -> None:
    """Run ``batches`` through ``net`` in eval mode without gradients (per-batch state reset after each), calling
    ``on_voltage(i, v)`` for the blocks ``indices`` (:func:`record_voltages`); the training mode is restored."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), record_voltages(net, indices, on_voltage):
            for x in batches:
                net(x)
                reset_state(net)
    finally:
        net.train(was_training)


def _restore_dynamics(neuron, outer) -> None:
    if outer is None:
        delattr(neuron, "dynamics")
    else:
        neuron.dynamics = outer


def is_graded(neuron) -> bool:
    """A lava-dl sigma-delta neuron: graded outputs, a pre-activation instead of a membrane potential."""
    return type(neuron).__module__.rsplit(".", 1)[-1] == "sigma_delta"


class _Recorded:
    """A sigma-delta neuron's activation that reports its input (the pre-activation ``sigma + bias``)."""

    def __init__(self, activation, report):
        self.activation = activation
        self.report = report
        self.__name__ = getattr(activation, "__name__", "activation")

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        self.report(u.detach())
        return self.activation(u)


def per_channel_mean(h: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum over everything but the channel axis (axis 1), and the number of summed entries per channel."""
    flat = h.transpose(0, 1).reshape(h.shape[1], -1)
    return flat.sum(1), flat.shape[1]


def criticality(net: nn.Module, indices: list[int], batches: Iterable[torch.Tensor], kind: str = "atan",
                alpha: float = 2.0, rates: dict[int, torch.Tensor] | None = None) -> dict[int, torch.Tensor]:
    """Channel criticality ``{block index: tensor[out]}`` of the given blocks on input spike batches (forward only).

    When ``rates`` is a dict it is filled with the mean input spike rate per input channel of each block.
    """
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {i: 0 for i in indices}
    graded = {i for i in indices if is_graded(net.blocks[i].neuron)}
    thresholds = {i: float(net.blocks[i].neuron.threshold) for i in indices if i not in graded}
    rate_sums: dict[int, list] = {i: [0.0, 0] for i in indices}

    def on_voltage(i: int, v: torch.Tensor) -> None:
        if i in graded:  # distance to the ReLU kink in units of the pre-activation's spread
            x = v / v.std().clamp(min=1e-12)
        else:
            x = (v - thresholds[i]) / thresholds[i]
        total, n = per_channel_mean(kernel(x, kind, alpha))
        sums[i] = total if i not in sums else sums[i] + total
        counts[i] += n

    handles = []
    if rates is not None:
        for i in indices:
            def pre(_m, args, i=i):
                total, n = per_channel_mean((args[0] != 0).to(torch.float32))
                rate_sums[i][0] = rate_sums[i][0] + total
                rate_sums[i][1] += n
            handles.append(net.blocks[i].synapse.register_forward_pre_hook(pre))
    try:
        replay(net, indices, batches, on_voltage)
    finally:
        for h in handles:
            h.remove()
    if rates is not None:
        rates.update({i: rate_sums[i][0] / max(rate_sums[i][1], 1) for i in indices if rate_sums[i][1]})
    return {i: sums[i] / counts[i] for i in sums}
