"""Which just-pruned weights to bring back: regrowth scores compared from one and the same pruned state.

Criticality's regeneration step over-prunes by magnitude and restores part of what it just removed; the suite
(``prune_suite.py``) compares whole runs, where every round's choice and the fine-tuning noise mix. Here one state
is built once (lava-dl's ``mnist-mlp-128`` pruned by magnitude to ``--first`` with ``drive_limit`` applied and one
epoch of fine-tuning, as round 1 of a 2-step run does) and each score then does the same second step from a copy of
it: over-prune to ``--over``, restore down to ``--target`` (pre-pruning values), report the accuracy and the spike
rate per layer before fine-tuning and after one epoch. ``magnitude`` prunes to the target without over-pruning
(GMP's step); ``none`` keeps the over-pruned network.

    .venv/bin/python benchmarks/regrowth_scores.py --subset 5000 --test-subset 2000
Writes benchmarks/results/regrowth_scores.json.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy import settings

ROOT = Path(__file__).resolve().parent
SCORES = ("magnitude", "none", "random", "post", "post_share", "post_magnitude", "post_rate", "post_rate_magnitude")


def second_step(name: str, net, engine, trainer, args, crit, rates, generator) -> dict:
    """One copy of the state through ``name``'s step; accuracy and spike rates before and after one epoch."""
    from snndeploy.prune import scores
    from snndeploy.prune.methods import select_regrowth

    net, engine = copy.deepcopy((net, engine))  # together, so the copy's masks stay attached to the copy's net
    magnitude = scores.weight_magnitude(engine)
    chosen = engine.prune_weights(args.target if name == "magnitude" else args.over, magnitude, "erk")
    if name not in ("magnitude", "none"):
        score = (scores.weight_random(engine, generator) if name == "random"
                 else scores.weight_criticality(engine, name, crit, rates, chosen, magnitude))
        regrown = select_regrowth(engine.weight_groups(args.target, "erk"), chosen, score, structured=False)
        engine.regrow_weights(regrown, init="restore")
    before = trainer.evaluate(net)
    finetune(net, engine, trainer, args)
    after = trainer.evaluate(net)
    return {"score": name, "sparsity": engine.weight_sparsity(), "accuracy_before_finetune": before["accuracy"],
            "accuracy_after_1_epoch": after["accuracy"], "spike_rates_before": before["block_spike_rates"],
            "spike_rates_after": after["block_spike_rates"]}


def finetune(net, engine, trainer, args) -> None:
    import torch

    from snndeploy.prune.runner import relative_rate_groups

    optimizer = torch.optim.Adam(relative_rate_groups(engine, net, args.relative_lr, 1e-3))
    engine.bind_optimizer(optimizer)
    trainer.train_epochs(net, optimizer, 1, engine.after_step)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="default: lava-dl's mnist-mlp-128 fixture")
    p.add_argument("--first", type=float, default=0.83125, help="sparsity of the shared state (cubic step 1 of 2)")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--over", type=float, default=0.975, help="over-pruning of the second step")
    p.add_argument("--scores", nargs="+", default=list(SCORES), choices=SCORES)
    p.add_argument("--subset", type=int, default=5000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--calib", type=int, default=10, help="criticality calibration batches")
    p.add_argument("--relative-lr", type=float, default=0.016)
    p.add_argument("--drive-limit", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "regrowth_scores.json")
    args = p.parse_args()

    import itertools

    import torch

    from snndeploy.atomic import write_json
    from snndeploy.loader import load_model
    from snndeploy.prune import criticality, scores
    from snndeploy.prune.config import CriticalityConfig
    from snndeploy.prune.distill import make_objective
    from snndeploy.prune.drive import limit_drive
    from snndeploy.prune.engine import PruningEngine
    from snndeploy.prune.finetune import DatasetTrainer

    torch.manual_seed(args.seed)
    model = args.model or settings.fixtures_dir() / "lava-dl/mnist-mlp-128/network.net"
    net = load_model(model)
    trainer = DatasetTrainer("mnist", net, subset=args.subset, test_subset=args.test_subset, seed=args.seed,
                             progress=False, objective=make_objective(CriticalityConfig(), net, None))
    engine = PruningEngine(net)
    engine.prune_weights(args.first, scores.weight_magnitude(engine), "erk")
    batches = [x for x, _ in itertools.islice(trainer.train_batches(), args.calib)]
    drive = limit_drive(engine, net, batches[:4], args.drive_limit)
    finetune(net, engine, trainer, args)
    state = trainer.evaluate(net)
    print(f"shared state: sparsity {engine.weight_sparsity():.4f}, accuracy {state['accuracy']:.4f}, "
          f"drive {drive}")
    rates: dict = {}
    crit = criticality.criticality(net, [lay.info.index for lay in engine.layers], batches, rates=rates)
    rows = []
    print(f"{'score':16s} {'sparsity':>8s} {'before FT':>9s} {'1 epoch':>8s}  spike rates before FT")
    for name in args.scores:
        row = second_step(name, net, engine, trainer, args, crit, rates, torch.Generator().manual_seed(args.seed))
        rows.append(row)
        rates_text = " ".join(f"{v:.3f}" for v in row["spike_rates_before"].values())
        print(f"{name:16s} {row['sparsity']:8.4f} {row['accuracy_before_finetune']:9.4f} "
              f"{row['accuracy_after_1_epoch']:8.4f}  {rates_text}", flush=True)
    write_json(args.out, {"command": vars(args) | {"model": str(model), "out": str(args.out)},
                          "shared_state": {"sparsity": engine.weight_sparsity(), "accuracy": state["accuracy"],
                                           "spike_rates": state["block_spike_rates"], "drive": drive},
                          "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
