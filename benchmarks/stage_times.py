"""How long the pipeline's simulate and verify stages take on Lava at given sample counts (their defaults' basis).

    nice -n 10 .venv/bin/python benchmarks/stage_times.py [--simulate 500,1000] [--verify 100] [--steps 25]

Runs ``simulate_net`` and ``verify`` as the pipeline's stages do (MNIST test digits as rate spikes, T = 25, one
Lava runtime per core) on lava-dl's dense 784-512-512-10 (mnist-mlp-512, its Lava network built from the torch
model as ``verify`` does): an upper bound for the demo's 90 %-pruned MLP of the same shape (more synapses per
step, same neurons). Prints seconds (Lava only: imports, encoding and the stages' file writing apart) and the
load average.
"""

from __future__ import annotations

import argparse
import os
import time

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.settings import fixtures_dir


def main() -> None:
    from snndeploy.export.lava_net import import_lava
    from snndeploy.export.verify import verify
    from snndeploy.lava_workers import default_workers
    from snndeploy.loader import open_model
    from snndeploy.sim_inputs import dataset_inputs
    from snndeploy.simulate import simulate_net

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", default="500,1000")
    parser.add_argument("--verify", default="100")
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    opened = open_model(fixtures_dir() / "lava-dl" / "mnist-mlp-512" / "network.net", model=True, net=True)
    model, net = opened.model.eval(), opened.net
    import_lava()
    workers = default_workers()
    print(f"load average {os.getloadavg()[0]:.1f}, {workers} workers", flush=True)
    for n in [int(a) for a in args.simulate.split(",") if a]:
        x = dataset_inputs("mnist", net.input_shape, samples=n, steps=args.steps).spikes
        start = time.perf_counter()
        result = simulate_net(net, x, workers=workers)
        print(f"simulate {n:>5} samples: {time.perf_counter() - start:6.1f} s ({result.plan.describe()})", flush=True)
    for n in [int(a) for a in args.verify.split(",") if a]:
        x = dataset_inputs("mnist", net.input_shape, samples=n, steps=args.steps).spikes
        start = time.perf_counter()
        report = verify(model, net, x, workers=workers)
        print(f"verify   {n:>5} samples: {time.perf_counter() - start:6.1f} s (agree {report.agree})", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
