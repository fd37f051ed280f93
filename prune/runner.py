"""One pruning run: rounds of prune [+ regenerate] and fine-tune, with a resume state after every round.

Resume: after each round ``OUT/prune_state.pt`` holds the network (stored weights, masks, gates), the engine records,
the cost so far and the RNG state, so a run killed at any point continues from the last finished round and produces
the same masks as an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from snndeploy.atomic import atomic_path
from snndeploy.errors import UserError
from snndeploy.models.checkpoint import rng_state, safe_torch_load, set_rng_state
from snndeploy.models.spec import spec_to_dict
from snndeploy.prune import config as cfglib
from snndeploy.prune.cost import CostMeter, model_stats, synops_per_sample
from snndeploy.prune.drive import limit_drive
from snndeploy.prune.engine import PruningEngine, Selection
from snndeploy.prune.finetune import Backend
from snndeploy.prune.methods import Method, Round
from snndeploy.prune.reconstruct import reconstruct
from snndeploy.prune.shrink import shrink
from snndeploy.train import distributed

STATE_FILE = "prune_state.pt"
DRIVE_BATCHES = 4  # training batches on which drive_limit measures each layer's median drive
STATE_FORMAT = "snndeploy-prune-state"
# a run that ends further than this below its target did not reach it (Grad R and PQ learn their sparsity; channel
# counts round)
TARGET_TOLERANCE = 0.01


@dataclass
class RunSpec:
    """Everything that defines a run (a resumed run must match it)."""

    method: Method
    config: cfglib.PruneConfig
    target: float
    structured: bool
    source: str

    def identity(self) -> dict:
        return {"method": self.method.name, "config": cfglib.config_to_dict(self.config), "target": self.target,
                "structured": self.structured, "source": self.source}


@dataclass
class RunContext:
    """What methods see: the engine, the network, a seeded generator and the training data."""

    engine: PruningEngine
    net: nn.Module
    generator: torch.Generator
    trainer: Backend
    cost: CostMeter
    rewind: dict = field(default_factory=dict)  # the runner's rewind point (the same dict: saved with the run)
    history: list[dict] = field(default_factory=list)  # the runner's finished rounds (the same list)

    def limit_drive(self, limit: float) -> dict | None:
        """``drive_limit`` (:mod:`snndeploy.prune.drive`), once per run (no earlier round's entry has ``drive``) and
        only after weights were removed; returns what it did for the round's ``drive`` entry. The runner calls it
        after every pruning step; a method that removes weights inside its own training (Deep R) calls it before
        that training and returns it in its round info."""
        if limit <= 0 or any("drive" in h for h in self.history) or self.engine.sparsity() <= 0:
            return None
        return limit_drive(self.engine, self.net, self.calibration_inputs(DRIVE_BATCHES), limit)

    def set_rewind_point(self) -> None:
        """Make the network's current weights the point that ``Round.rewind`` restores."""
        self.rewind.clear()
        self.rewind.update(_non_mask_state(self.net))

    def calibration_inputs(self, batches: int) -> list[torch.Tensor]:
        """This rank's share of ``batches`` calibration batches (all of them in a single process)."""
        self.cost.calibration_batches += batches
        return [x for x, _ in itertools.islice(self.trainer.train_batches(), _share(batches))]

    def accumulate_gradients(self, batches: int, before_reduce: Callable[[], None] | None = None) -> None:
        """Gradients summed over ``batches`` batches (under DDP: over every rank's share, summed across ranks);
        ``before_reduce`` runs on each rank's own sums before that."""
        self.cost.calibration_batches += batches
        self.net.zero_grad(set_to_none=True)
        self.trainer.accumulate_gradients(self.net, _share(batches))
        if before_reduce is not None:
            before_reduce()
        if distributed.world_size() > 1:
            with torch.no_grad():
                for layer in self.engine.layers:
                    layer.mask.dense_grad.copy_(distributed.all_reduce_sum(layer.mask.dense_grad))
                for param in self.net.parameters():
                    if param.grad is not None:
                        param.grad.copy_(distributed.all_reduce_sum(param.grad))


def _share(batches: int) -> int:
    """Batches per rank: the ranks together take ``batches`` (rounded up to a multiple of the world size)."""
    return math.ceil(batches / distributed.world_size())


@dataclass
class RunResult:
    report: dict
    net: nn.Module
    state_path: Path
    history: list[dict] = field(default_factory=list)


def _soft_threshold(engine: PruningEngine, amount: float) -> None:
    """Proximal L1 step on the channel gates (network slimming on gates)."""
    with torch.no_grad():
        for gate in engine.gate_params():
            gate.copy_(torch.sign(gate) * torch.clamp(gate.abs() - amount, min=0.0))


def _non_mask_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()
            if not (k.endswith(".mask") or k.endswith(".channel_mask"))}


def _rng_state() -> dict:
    return rng_state()


def _set_rng(state: dict) -> None:
    set_rng_state(state)


class Runner:
    """Runs a method on a network with a trainer; writes the resume state into ``out``."""

    def __init__(self, spec: RunSpec, net: nn.Module, trainer: Backend, out: Path,
                 progress: Callable[[str], None] | None = None):
        self.spec = spec
        self.net = net
        self.trainer = trainer
        self.out = Path(out)
        self.progress = progress or (lambda _msg: None)
        cfg = spec.config
        selection = Selection(tuple(cfg.include), tuple(cfg.exclude), cfg.exclude_first, cfg.exclude_last)
        try:
            self.engine = PruningEngine(net, structured=spec.structured, selection=selection)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        self.rounds: list[Round] = spec.method.rounds(cfg, spec.target)
        self.cost = CostMeter()
        self.history: list[dict] = []
        self.start_state = _non_mask_state(net)
        self.accuracy_before: float | None = None
        self.next_round = 0
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.optimizer: torch.optim.Optimizer | None = None

    # ----- state ---------------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def save_state(self) -> None:
        """Rank 0 writes the resume state (every rank holds the same one); the others wait until it is there."""
        if not distributed.is_main():
            distributed.barrier()
            return
        state = {"format": STATE_FORMAT, "identity": self.spec.identity(), "next_round": self.next_round,
                 "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                 "engine": self.engine.state_dict(), "cost": self.cost.to_dict(), "history": self.history,
                 "start_state": self.start_state, "accuracy_before": self.accuracy_before, "rng": _rng_state(),
                 "generator": self.generator.get_state(),
                 "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None}
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)
        distributed.barrier()

    def load_state(self) -> None:
        path = self.state_path
        state = safe_torch_load(path, "a pruning resume state")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise UserError("not a pruning resume state", path)
        if state["identity"] != self.spec.identity():
            diff = sorted(k for k, v in self.spec.identity().items() if state["identity"].get(k) != v)
            raise UserError(f"the saved run differs from this command in: {', '.join(diff)}; "
                            "use the same arguments, or --force to start over", path)
        self.net.load_state_dict(state["net"])
        self.engine.load_state_dict(state["engine"])
        self.cost = CostMeter.from_dict(state["cost"])
        self.history = list(state["history"])
        self.start_state = state["start_state"]
        self.accuracy_before = state["accuracy_before"]
        self.next_round = int(state["next_round"])
        self.generator.set_state(state["generator"])
        if state.get("optimizer") is not None:
            self.optimizer = self._new_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
            self.engine.bind_optimizer(self.optimizer)
        _set_rng(state["rng"])

    # ----- run -----------------------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> RunResult:
        if resume and self.state_path.is_file():
            self.load_state()
            self.progress(f"resuming at round {self.next_round + 1}/{len(self.rounds)}")
        else:
            torch.manual_seed(self.spec.config.seed)
            self.accuracy_before = self.trainer.evaluate(self.net)["accuracy"]
            self.save_state()
        ctx = RunContext(self.engine, self.net, self.generator, self.trainer, self.cost, self.start_state,
                         self.history)
        todo = self.rounds[self.next_round:]
        bar = tqdm(todo, desc=f"prune {self.spec.method.name}", unit="round", leave=False,
                   disable=not getattr(self.trainer, "progress", False))
        for rnd in bar:
            self._round(ctx, rnd)
            self.next_round = rnd.index + 1
            self.save_state()
            bar.set_postfix(sparsity=f"{self.engine.sparsity():.3f}")
        return self.finish()

    def _round(self, ctx: RunContext, rnd: Round) -> None:
        cfg, method = self.spec.config, self.spec.method
        self.cost.start()
        t0 = time.perf_counter()
        info: dict[str, Any] = {}
        if rnd.prune:
            before = copy.deepcopy(self.net) if cfg.reconstruct and not rnd.rewind else None
            masks_before = self.engine.live_masks() if before is not None else {}
            info = method.prune(ctx, cfg, rnd)
            # a method that cut in sub-steps (snndeploy.prune.descent) reassigned and refitted after each of them
            descended = "descent" in info
            if not self.spec.structured:
                info["ineffective_share"] = self.engine.ineffective_share()
                if cfg.reassign_ineffective and not descended:
                    info["reassigned"] = self.engine.reassign_ineffective()
            if before is not None and not descended and self._masks_changed(masks_before):
                info["reconstructed"] = reconstruct(self.engine, self.net, before,
                                                    ctx.calibration_inputs(cfg.reconstruct_batches),
                                                    cfg.reconstruct_damping)
            ranks = self.engine.check_masks_agree()
            if ranks > 1:
                info["masks_agree_on_ranks"] = ranks
            if rnd.rewind:
                self.net.load_state_dict(self.start_state, strict=False)
                self.engine.after_step()
            if cfg.rescale != 1.0 and not any("rescaled" in h for h in self.history):
                self.engine.scale_weights(cfg.rescale)
                info["rescaled"] = cfg.rescale
            drive = None if "drive" in info else ctx.limit_drive(cfg.drive_limit)  # the method may have done it
            if drive is not None:
                info["drive"] = drive
        self.engine.step += 1
        steps = self._finetune(rnd)
        self.cost.epochs += rnd.epochs
        self.cost.optimizer_steps += steps
        self.cost.stop()
        entry = {"round": rnd.index, "target": rnd.target, "sparsity": self.engine.sparsity(),
                 "weight_sparsity": self.engine.weight_sparsity(), "epochs": rnd.epochs, "optimizer_steps": steps,
                 "wall_s": time.perf_counter() - t0, **info}
        gates = self.engine.gate_params()
        if gates:
            entry["mean_abs_gate"] = float(torch.cat([g.detach().abs() for g in gates]).mean())
        if cfg.eval_each_step or rnd.index == self.rounds[-1].index:
            entry["accuracy"] = self.trainer.evaluate(self.net)["accuracy"]
        self.history.append(entry)
        self.progress(f"round {rnd.index + 1}/{len(self.rounds)}: sparsity {entry['sparsity']:.4f}"
                      + (f", accuracy {entry['accuracy']:.4f}" if "accuracy" in entry else ""))

    def _optimizer(self, rnd: Round) -> torch.optim.Optimizer:
        """The run's Adam: one for all rounds (moments carry over), a fresh one where the round asks for it."""
        if self.optimizer is None or rnd.fresh_optimizer:
            self.optimizer = self._new_optimizer()
            self.engine.bind_optimizer(self.optimizer)
        return self.optimizer

    def _new_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.spec.config
        if cfg.lr_rule != "relative":  # run_prune resolves auto; a runner built without it trains at lr
            return torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        return torch.optim.Adam(relative_rate_groups(self.engine, self.net, cfg.relative_lr, cfg.lr))

    def _masks_changed(self, before: dict[int, torch.Tensor]) -> bool:
        now = self.engine.live_masks()
        return any(not torch.equal(now[index], mask) for index, mask in before.items())

    def _finetune(self, rnd: Round) -> int:
        if rnd.epochs <= 0:
            return 0
        lr = self.spec.config.lr
        optimizer = self._optimizer(rnd)

        def after_step() -> None:
            if rnd.l1 > 0:
                _soft_threshold(self.engine, lr * rnd.l1)
            self.engine.after_step()

        anneal = self.spec.config.lr_decay == "final" and rnd.index == self.rounds[-1].index
        start = sum(r.epochs for r in self.rounds if r.index < rnd.index)  # where a fractional round's window starts
        return self.trainer.train_epochs(self.net, optimizer, rnd.epochs, after_step, seed_offset=rnd.index,
                                         anneal=anneal, start=start)

    # ----- result --------------------------------------------------------------------------------------------------
    def finish(self) -> RunResult:
        keep = None
        if self.spec.structured:
            keep = {layer.info.index: torch.nonzero(layer.mask.channel_mask).view(-1) for layer in self.engine.layers}
        engine_stats = self.engine.layer_stats()
        weight_sparsity, channel_sparsity = self.engine.weight_sparsity(), self.engine.channel_sparsity()
        records = list(self.engine.records)
        self.engine.finalize()
        if keep is not None:
            shrink(self.net, self.engine.graph, keep)
        accuracy_after = self.history[-1].get("accuracy") if self.history else None
        if accuracy_after is None:
            accuracy_after = self.trainer.evaluate(self.net)["accuracy"]
        synops = synops_per_sample(self.net, [x for x, _ in self.trainer.test_batches()])
        report = {
            "method": self.spec.method.name, "target_sparsity": self.spec.target, "structured": self.spec.structured,
            "source": self.spec.source, "config": cfglib.config_to_dict(self.spec.config),
            "spec": _spec_dict(self.net),
            "accuracy_before": self.accuracy_before, "accuracy_after": accuracy_after,
            "sparsity": {"weights": weight_sparsity, "channels": channel_sparsity, "per_layer": engine_stats},
            "target_reached": (channel_sparsity if self.spec.structured else weight_sparsity)
            >= self.spec.target - TARGET_TOLERANCE,
            "model": model_stats(self.net), "synops_per_sample": synops,
            "cost": self.cost.to_dict(), "history": self.history, "records": records,
        }
        return RunResult(report, self.net, self.state_path, self.history)


def relative_rate_groups(engine: PruningEngine, net: nn.Module, relative: float, lr: float) -> list[dict]:
    """Adam parameter groups: each pruned layer at ``relative`` x the RMS of its live weights, the rest at ``lr``."""
    groups, seen = [], set()
    for layer in engine.layers:
        live = layer.weight.detach()[layer.mask.mask != 0]
        rms = float(live.pow(2).mean().sqrt()) if live.numel() else 0.0
        groups.append({"params": [layer.weight], "lr": relative * rms if rms > 0 else lr})
        seen.add(id(layer.weight))
    rest = [p for p in net.parameters() if id(p) not in seen]
    return groups + ([{"params": rest, "lr": lr}] if rest else [])


def _spec_dict(net: nn.Module) -> dict | None:
    spec = getattr(net, "spec", None)
    if spec is None or not dataclasses.is_dataclass(spec):
        return None

    return spec_to_dict(spec)
