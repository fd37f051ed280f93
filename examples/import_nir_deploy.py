"""Import a NIR graph written by another framework (snnTorch, Norse, sinabs, rockpool ...), put it on Loihi's
8-bit grid, check the Lava network against the torch model rebuilt from it, and get a Loihi 2 job bundle.

    python examples/import_nir_deploy.py [GRAPH.nir] [--dt 1e-4] [--out DIR]

Uses the snndeploy CLI from Python; the same commands run in a shell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_GRAPH = Path(__file__).parents[1] / "tests" / "data" / "nir" / "lif_norse.nir"


def run(*args: str) -> int:
    from snndeploy.cli import main

    print("$ snndeploy", " ".join(args), flush=True)
    return main(list(args))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", nargs="?", type=Path, default=DEFAULT_GRAPH)
    parser.add_argument("--dt", default="1e-4", help="time step, for graphs that do not record one")
    parser.add_argument("--out", type=Path, default=Path("runs/example-import-nir"))
    parser.add_argument("--steps", default="50")
    parser.add_argument("--tiny", action="store_true", help="(accepted for symmetry; the run is small anyway)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quantized = args.out / "quantized.nir"
    # 1. other tool's graph -> Loihi-quantized NIR, verified spike for spike on Lava fixed_pt
    code = run("export", str(args.graph), "--to", "nir", "--out", str(quantized), "--quantize", "--dt", args.dt,
               "--verify", "--steps", args.steps, "--force")
    if code != 0:
        return code
    # 2. what it costs on Loihi 2
    code = run("estimate", str(quantized), "--target", "loihi2")
    if code not in (0, 1):
        return code
    # 3. a Loihi 2 job bundle (exit 3: lava-loihi is not installed here, so the bundle is written for INRC)
    code = run("deploy", str(quantized), "--target", "loihi2", "--out", str(args.out / "bundle"),
               "--steps", args.steps, "--force")
    return 0 if code in (0, 3) else code


if __name__ == "__main__":
    sys.exit(main())
