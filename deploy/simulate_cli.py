"""``snndeploy simulate``: parses the options, opens the model and runs it (:mod:`snndeploy.simulate`, or
:mod:`snndeploy.simulate_sd` for a sigma-delta network), then prints and writes the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from snndeploy.atomic import check_output
from snndeploy.cli_support import (
    COUNT,
    POSITIVE,
    PROBABILITY,
    SampleCount,
    emit,
    precision_option,
    reset_option,
    resolve_precision,
)
from snndeploy.errors import UserError, naming
from snndeploy.export.ir import is_sigma_delta
from snndeploy.export.lava_net import check_buildable
from snndeploy.lava_runner import LavaRunError
from snndeploy.lava_workers import default_workers
from snndeploy.loader import load_net
from snndeploy.sim_inputs import netx_reset_interval, prepare
from snndeploy.sim_outputs import summarize, write_outputs
from snndeploy.simulate import DEFAULT_CHUNK_STEPS, resolve_layers, simulate_net
from snndeploy.simulate_sd import prepare_sd, simulate_sd


def _human(result: dict[str, Any]) -> str:
    t = result["timing"]
    lines = [f"simulated {result['network']} ({result['precision']}, Lava CPU): {result['samples']} sample(s) x "
             f"{result['steps_per_sample']} steps, {result['output_spikes']} output spikes"]
    if result.get("input_layout"):
        lines.append(f"  input read as {result['input_layout']}")
    if "accuracy" in result:
        lines.append(f"  accuracy {result['accuracy']:.4f} ({result['correct']}/{result['samples']})")
    lines += [f"  note: {note}" for note in result.get("notes", [])]
    lines.append(f"  {result['samples_per_s']:.2f} samples/s in {t['wall_s']:.1f} s: {result['sample_runs']}, "
                 f"{result['workers']} worker(s)")
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
              help="Inputs in lava-dl's golden layout: .npy (*S, T) or (N, *S, T), S the input shape in Lava's x, y, c "
              "order (or S alone: the input layer's bias); .npz with x and optional labels y.")
@click.option("--dataset", help="A local dataset (test split): mnist, fashion-mnist, nmnist-small, ...")
@click.option("--samples", type=SampleCount(),
              help="How many samples, or 'all' (default: all in --input, 100 from --dataset).")
@click.option("--steps", type=COUNT, help="Time steps per sample (default: the input's, the model's or the dataset's).")
@precision_option
@click.option("--probe", "probes", multiple=True, help="Layer (name or index) whose spikes, u and v are saved.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write output.npy (golden layout), probes, activity.json here.")
@click.option("--record", type=click.Choice(["output", "all"]), default="output", show_default=True,
              help="all: also DIR/layers.npz with every layer's spikes (and u, v in fixed precision).")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time step of a NIR graph that does not record one (other tools' graphs).")
@reset_option
@click.option("--force", is_flag=True, help="Overwrite an existing --out folder.")
@click.option("--timeout", "timeout_s", type=POSITIVE, default=600.0, show_default=True,
              help="Seconds one Lava run call may take before it is stopped.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rate encoding of --dataset images.")
@click.option("--max-rate", type=PROBABILITY, default=1.0, show_default=True,
              help="Spike probability of a white pixel.")
@click.option("--chunk-steps", type=COUNT, default=DEFAULT_CHUNK_STEPS, show_default=True,
              help="Steps per Lava build (long inputs are run in several builds).")
@click.option("--workers", type=COUNT, default=None,
              help="Lava runtimes in parallel processes, each on a share of the samples (default: cores available).")
@click.option("--copies", type=COUNT, default=None,
              help="Network copies per Lava build (default: chosen from the network's size; docs/simulate.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def simulate(model: Path, input_path: Path | None, dataset: str | None, samples: int | None, steps: int | None,
             precision: str, old_mode: str | None, probes: tuple[str, ...], out: Path | None, record: str,
             dt: float | None, reset: str | None, force: bool,
             timeout_s: float, seed: int, max_rate: float, chunk_steps: int, workers: int | None, copies: int | None,
             as_json: bool) -> None:
    """Run MODEL (netx .net, .nir, spec or checkpoint) on Lava's CPU backend (Loihi2SimCfg)."""

    if out is not None:
        check_output(out, force=force, folder=True)
    if timeout_s <= 0 or chunk_steps < 1:
        raise UserError("--timeout and --chunk-steps must be positive")
    mode = resolve_precision(precision, old_mode)
    if record == "all" and out is None:
        raise UserError("--record all writes DIR/layers.npz: give --out DIR")
    try:
        net = load_net(model, dt=dt, reset=reset)
    except UserError:  # e.g. a netx file whose input shape only --dataset tells: prepare() says what is wrong
        net = None
    sd = net is not None and is_sigma_delta(net)
    if sd:
        inputs = prepare_sd(net, input_path, samples, steps, dataset)
    else:
        net, inputs = prepare(model, input_path, dataset, samples, steps, seed, max_rate, dt, reset)
    with naming(model):  # before any Lava runtime starts: a network Lava cannot hold in this precision
        check_buildable(net, mode)
    probe_idx = resolve_layers(net, probes)
    everything = tuple(range(len(net.layers))) if record == "all" else ()
    uv = tuple(sorted(set(probe_idx) | set(everything if mode == "fixed_pt" else ())))
    try:
        if sd:
            result = simulate_sd(net, inputs.spikes, mode=mode, probe=probe_idx,
                                 timeout_s=timeout_s)
        else:
            result = simulate_net(net, inputs.spikes, mode=mode, probe=uv, record=everything,
                                  timeout_s=timeout_s, chunk_steps=chunk_steps, progress=not as_json, copies=copies,
                                  workers=default_workers() if workers is None else workers, input_bias=inputs.bias,
                                  reset_interval=netx_reset_interval(net, inputs))
    except _lava_errors() as exc:
        raise click.ClickException(str(exc)) from exc
    summary = summarize(result, inputs, str(model))
    summary["notes"] = list(net.meta.get("notes", []))  # e.g. the reset a NIR graph does not record
    if out is not None:
        write_outputs(out, result, inputs, summary, force=force, record_all=record == "all", probe_files=probe_idx)
        summary["out"] = str(out)
    emit(summary, as_json, _human)


def _lava_errors() -> tuple[type[BaseException], ...]:

    return (LavaRunError,)
