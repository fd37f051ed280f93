"""``snndeploy simulate``: run an exported network on Lava's CPU backend over one or many samples.

The network runs through :mod:`snndeploy.sim.runner` (chunked, samples back to back); its inputs come from
:mod:`snndeploy.sim.inputs` and its activity (``activity.json``) from :mod:`snndeploy.sim.activity`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from snndeploy.atomic import check_output
from snndeploy.cli_support import COUNT, POSITIVE, PROBABILITY, emit, precision_option, resolve_precision
from snndeploy.errors import UserError
from snndeploy.lava_runner import LavaRunError
from snndeploy.sim.inputs import prepare
from snndeploy.sim.report import summarize, write_outputs
from snndeploy.sim.runner import DEFAULT_CHUNK_STEPS, resolve_layers, simulate_net


def _human(result: dict[str, Any]) -> str:
    t = result["timing"]
    lines = [f"simulated {result['network']} ({result['precision']}, Lava CPU): {result['samples']} sample(s) x "
             f"{result['steps_per_sample']} steps, {result['output_spikes']} output spikes"]
    if "accuracy" in result:
        lines.append(f"  accuracy {result['accuracy']:.4f} ({result['correct']}/{result['samples']})")
    lines.append(f"  {t['steps_per_s']:.0f} steps/s while running; fixed overhead {t['overhead_s']:.2f} s "
                 f"(build {t['build_s']:.2f}, compile+start {t['start_s']:.2f}, stop {t['stop_s']:.2f}) over "
                 f"{t['chunks']} run(s); reading spikes back {t['read_s']:.2f} s")
    for row in result["layers"]:
        lines.append(f"  {row['index']:>2} {row['name']:<16} {row['op']:<6} {row['neurons']:>7} neurons "
                     f"{row['spikes']:>9} spikes")
    if result.get("out"):
        lines.append(f"  wrote {result['out']}")
    return "\n".join(lines)


@click.command("simulate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Spike inputs: .npy (*shape, T) or (N, *shape, T); .npz with x and optional labels y.")
@click.option("--dataset", help="A local dataset (test split): mnist, fashion-mnist, nmnist-small, ...")
@click.option("--samples", type=COUNT, help="How many samples (default: all in --input, 100 from --dataset).")
@click.option("--steps", type=COUNT, help="Time steps per sample (default: the input's, the model's or the dataset's).")
@precision_option
@click.option("--probe", "probes", multiple=True, help="Layer (name or index) whose spikes, u and v are saved.")
@click.option("--out", type=click.Path(path_type=Path), help="Write output spikes, probes, activity.json here.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out folder.")
@click.option("--timeout", "timeout_s", type=POSITIVE, default=600.0, show_default=True,
              help="Seconds one Lava run call may take before it is stopped.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rate encoding of --dataset images.")
@click.option("--max-rate", type=PROBABILITY, default=1.0, show_default=True,
              help="Spike probability of a white pixel.")
@click.option("--chunk-steps", type=COUNT, default=DEFAULT_CHUNK_STEPS, show_default=True,
              help="Steps per Lava build (long inputs are run in several builds).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def simulate(model: Path, input_path: Path | None, dataset: str | None, samples: int | None, steps: int | None,
             precision: str, old_mode: str | None, probes: tuple[str, ...], out: Path | None, force: bool,
             timeout_s: float, seed: int, max_rate: float, chunk_steps: int, as_json: bool) -> None:
    """Run MODEL (netx .net, .nir, spec or checkpoint) on Lava's CPU backend (Loihi2SimCfg)."""
    if out is not None:
        check_output(out, force=force, folder=True)
    if timeout_s <= 0 or chunk_steps < 1:
        raise UserError("--timeout and --chunk-steps must be positive")
    mode = resolve_precision(precision, old_mode)
    net, inputs = prepare(model, input_path, dataset, samples, steps, seed, max_rate)
    probe_idx = resolve_layers(net, probes)
    try:
        result = simulate_net(net, inputs.spikes, mode=mode, probe=probe_idx, timeout_s=timeout_s,
                              chunk_steps=chunk_steps, progress=not as_json)
    except LavaRunError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = summarize(result, inputs, str(model))
    if out is not None:
        write_outputs(out, result, inputs, summary, force=force)
        summary["out"] = str(out)
    emit(summary, as_json, _human)
