"""Train the N-MNIST CNN on real event data, then prune whole channels until the network fits a Loihi 2 core
budget (the estimator decides), export it through NIR and check it spike for spike on Lava.

    python examples/nmnist_fit_cores.py [--tiny] [--cores N]

Without --cores the budget is three quarters of what the dense network needs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SPEC = Path(__file__).with_name("nmnist_cnn.yaml")


def config(tiny: bool) -> dict:
    return {
        "name": "nmnist-cnn-fit",
        "data": "nmnist",
        "test_subset": 20 if tiny else 100,
        "model": {"spec": str(SPEC), "epochs": 1 if tiny else 15, "subset": 100 if tiny else None},
        "prune": {"method": "l1filter", "sparsity": 0.5, "structured": True,
                  "config": {"epochs_per_step": 1 if tiny else 5}, "subset": 100 if tiny else None,
                  "test_subset": 20 if tiny else 100},
        "export": {"formats": ["nir", "netx"]},
        "verify": {"samples": 1},
        "simulate": {"samples": 2 if tiny else 100},
        "estimate": {"targets": ["loihi2"]},
    }


def main() -> None:
    from dataclasses import replace

    from snndeploy.fit import estimate_net, parse_fit
    from snndeploy.loader import load_model
    from snndeploy.pipeline import run_pipeline, summarize_run
    from snndeploy.pipeline_config import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, help="Loihi 2 core budget (default: 3/4 of the dense network's)")
    parser.add_argument("--out", type=Path, default=Path("runs/example-nmnist-fit"))
    parser.add_argument("--tiny", action="store_true", help="a short run on a few samples (CI)")
    args = parser.parse_args()
    cfg = config_from_dict(config(args.tiny), "example")
    run = run_pipeline(cfg, args.out, progress=not args.tiny, until="model")
    cores = args.cores
    if cores is None:
        profile, budget = parse_fit("loihi2:cores=1000000")
        dense = estimate_net(load_model(run.results["model"]["checkpoint"]), profile, budget).cores
        cores = max(1, (3 * dense) // 4)
        print(f"dense network: {dense} Loihi 2 cores; budget: {cores}")
    run = run_pipeline(replace(cfg, fit=f"loihi2:cores={cores}"), args.out, progress=not args.tiny)
    print(json.dumps(summarize_run(run), indent=2))


if __name__ == "__main__":
    main()
