"""Prune the lava-dl MNIST network (a trained netx HDF5 from lava-dl's tutorials) with criticality-guided
pruning-regeneration, export it through NIR, verify it on Lava's fixed-point models, and see its Loihi 2 cost.

    python examples/prune_lava_dl_mnist.py [--tiny] [--network mnist-mlp-128|mnist-mlp-512] [--sparsity 0.9]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def config(network: Path, sparsity: float, tiny: bool) -> dict:
    finetune = {"steps": 1 if tiny else 3, "epochs_per_step": 1, "calib_batches": 2 if tiny else 10}
    return {
        "name": f"{network.parent.name}-criticality-{sparsity:g}",
        "data": "mnist",
        "test_subset": 200 if tiny else 2000,
        "model": {"load": str(network)},
        "prune": {"method": "criticality", "sparsity": sparsity, "config": finetune,
                  "subset": 300 if tiny else 20000, "test_subset": 200 if tiny else 2000},
        "export": {"formats": ["nir", "netx"]},
        "verify": {"samples": 1 if tiny else 3},
        "simulate": {"samples": 5 if tiny else 100},
        "estimate": {"targets": ["loihi2", "loihi1"]},
    }


def main() -> None:
    from snndeploy import settings
    from snndeploy.pipeline import run_pipeline, summarize_run
    from snndeploy.pipeline_config import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="mnist-mlp-128", help="fixture folder under lava-dl/")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--out", type=Path, default=Path("runs/example-lava-dl-mnist"))
    parser.add_argument("--tiny", action="store_true", help="a minute-long run on small subsets (CI)")
    args = parser.parse_args()
    network = settings.fixtures_dir() / "lava-dl" / args.network / "network.net"
    run = run_pipeline(config_from_dict(config(network, args.sparsity, args.tiny), "example"), args.out,
                       progress=not args.tiny)
    print(json.dumps(summarize_run(run), indent=2))


if __name__ == "__main__":
    main()
