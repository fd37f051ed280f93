"""Weight masks and channel gates as torch parametrizations on lava-dl synapse weights.

A :class:`SynapseMask` sits on ``block.synapse.weight`` (shape ``[out, in, kh, kw, 1]``) and computes the weight the
synapse uses: ``W * mask * gate``. The stored weight keeps its values, so pruned entries can be restored exactly, and
the optional dense-gradient tracker records ``dL/dW_eff`` at every position, pruned or not (for gradient regrowth).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class SynapseMask(nn.Module):
    """Parametrization ``W -> W * mask * gate[:, None, ...]``.

    ``mask`` (0/1, weight shape) holds unstructured pruning. ``channel_mask`` (0/1, one per output channel) holds
    structured pruning: without a gate it multiplies the rows; with a learnable ``gate`` the engine keeps pruned
    gates at exactly 0 after every optimizer step, so ``dL/dgate`` stays available for regrowth ranking.
    """

    def __init__(self, weight: torch.Tensor, gate: bool = False):
        super().__init__()
        out = weight.shape[0]
        self.register_buffer("mask", torch.ones_like(weight))
        self.register_buffer("channel_mask", torch.ones(out, dtype=weight.dtype, device=weight.device))
        self.gate = nn.Parameter(torch.ones(out, dtype=weight.dtype, device=weight.device)) if gate else None
        self.track_grad = False
        self.register_buffer("dense_grad", torch.zeros_like(weight), persistent=False)

    def _rows(self, vec: torch.Tensor, ndim: int) -> torch.Tensor:
        return vec.view(-1, *([1] * (ndim - 1)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight * self.mask
        if self.gate is not None:  # pruned gates are held at exactly 0 (hold), outside the graph
            w = w * self._rows(self.gate, w.dim())
        else:
            w = w * self._rows(self.channel_mask, w.dim())
        if self.track_grad and w.requires_grad and torch.is_grad_enabled():
            w.register_hook(self._accumulate)
        return w

    def _accumulate(self, grad: torch.Tensor) -> None:
        self.dense_grad.add_(grad.detach())

    def hold(self) -> None:
        """Re-apply the channel mask to the gate values (after an optimizer step)."""
        if self.gate is not None:
            with torch.no_grad():
                self.gate.mul_(self.channel_mask)


def fold_weight_norm(synapse: nn.Module) -> None:
    """Replace lava-dl weight normalisation (``weight_g``, ``weight_v``) by the plain effective weight (exact)."""
    if getattr(synapse, "weight_norm_enabled", False):
        synapse.disable_weight_norm()


def attach(synapse: nn.Module, gate: bool = False) -> SynapseMask:
    """Put a :class:`SynapseMask` on ``synapse.weight`` (folding weight norm first) and return it."""
    if parametrize.is_parametrized(synapse, "weight"):
        for p in synapse.parametrizations.weight:
            if isinstance(p, SynapseMask):
                return p
        raise ValueError("synapse weight already has a foreign parametrization")
    fold_weight_norm(synapse)
    mask = SynapseMask(synapse.weight.detach(), gate=gate)
    parametrize.register_parametrization(synapse, "weight", mask, unsafe=True)
    return mask


def stored_weight(synapse: nn.Module) -> torch.Tensor:
    """The stored (unmasked) weight parameter of a synapse, masked or not."""
    if parametrize.is_parametrized(synapse, "weight"):
        return synapse.parametrizations.weight.original
    return synapse.weight


def detach(synapse: nn.Module) -> None:
    """Bake the mask (and gate) into the plain weight: zeros stay zeros, shapes are kept."""
    if parametrize.is_parametrized(synapse, "weight"):
        parametrize.remove_parametrizations(synapse, "weight", leave_parametrized=True)
