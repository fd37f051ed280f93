"""Deep R and soft Deep R (Bellec et al., ICLR 2018): Grad R's baselines, on the same rewiring optimizer.

As in the Grad R authors' ``deeprewire.py`` (spec section 4.4 and 6): fixed signs; only *active* connections follow
the Adam step, an L1 pull ``alpha`` towards zero and (optionally) Gaussian noise; a connection whose weight changes
sign dies. Deep R then wakes exactly as many random dormant connections of a layer as it lacks to
``(1 - p) * size`` active ones (the authors' fixed connection count), so a layer never ends sparser than the target;
reactivated weights get ``rewire_value`` with their own sign
(the authors' code writes ``+eps`` whatever the sign, which kills negative ones again at once). Soft Deep R has no
reactivation: dormant strengths random-walk below zero (bounded by ``-T^2 p / (2 alpha (1 - p))``) and come back when
they cross it. ``temperature`` defaults to 0 as in the authors' runs (no noise: soft Deep R then never regrows).
"""

from __future__ import annotations

from dataclasses import dataclass

from snndeploy.errors import UserError
from snndeploy.prune.gradr import GradRConfig, GradRMethod, RewiringHyper
from snndeploy.prune.methods import register


@dataclass(frozen=True)
class DeepRConfig(GradRConfig):
    """Deep R: ``alpha`` is the L1 penalty; ``temperature`` the noise scale (the authors' ``T``)."""

    alpha: float = 1e-3  # the authors' MNIST script passes -penalty (1e-3) as l1
    temperature: float = 0.0
    rewire_value: float = 1e-8
    cut_substeps: int = 5  # the start's cut to the fixed counts, from a trained network (snndeploy.prune.descent)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature < 0 or self.rewire_value <= 0:
            raise UserError("temperature must be >= 0 and rewire_value > 0")


@dataclass(frozen=True)
class SoftDeepRConfig(DeepRConfig):
    pass


@register
class DeepRMethod(GradRMethod):
    """Deep R: at most ``p`` of each layer's connections dormant; dead connections are replaced at random."""

    name = "deepr"
    config_class = DeepRConfig
    rule = "deepr"
    cuts_at_start = True

    def hyper(self, config, target: float) -> RewiringHyper:
        return RewiringHyper(rule=self.rule, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                             alpha=config.alpha, target=target, temperature=config.temperature,
                             rewire_value=config.rewire_value, log_every=config.log_every,
                             zero_sign=config.zero_sign, allocation=config.allocation)

    def check_target(self, target: float) -> None:
        if not 0.0 <= target < 1.0:
            raise UserError(f"--target-sparsity must be within [0, 1), got {target}")


@register
class SoftDeepRMethod(DeepRMethod):
    """Soft Deep R: no fixed connection count; dormant strengths diffuse and may cross back."""

    name = "soft_deepr"
    config_class = SoftDeepRConfig
    rule = "soft_deepr"
    cuts_at_start = False
