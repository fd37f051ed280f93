"""``snndeploy export`` and ``snndeploy verify``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from snndeploy.atomic import check_output
from snndeploy.cli_support import (
    CommandExit,
    SampleCount,
    emit,
    json_option,
    precision_option,
    reset_option,
    resolve_precision,
)
from snndeploy.errors import UserError, naming
from snndeploy.export import checks
from snndeploy.loader import model_of_net, open_model

TARGETS = ("nir", "lava", "netx", "onnx")
DEFAULT_VERIFY_SAMPLES = 2


def _verify_inputs(net, opts: dict[str, Any]):
    """(inputs ``(N, *shape, T)``, the normalised values of a dataset fed as a current as the model records, or
    None)."""
    import numpy as np

    from snndeploy.cli_support import ALL_SAMPLES
    from snndeploy.export.ir import is_sigma_delta
    from snndeploy.export.verify import load_inputs, sample_inputs, sample_sd_inputs

    steps, samples = opts["steps"], opts["samples"]
    sd = is_sigma_delta(net)
    if opts["inputs"] and opts["dataset"]:
        raise UserError("give --inputs FILE or --dataset NAME, not both")
    if opts["inputs"]:
        x = load_inputs(opts["inputs"], net.input_shape, graded=sd)[:samples or ALL_SAMPLES]
        return (x[..., np.arange(steps) % x.shape[-1]] if sd and steps else x), None  # replayed, as a RingBuffer
    samples = samples or DEFAULT_VERIFY_SAMPLES
    if sd:
        if opts["dataset"] or samples == ALL_SAMPLES:
            raise UserError("a sigma-delta network is verified on --inputs FILE or sampled graded frames")
        return sample_sd_inputs(net.input_shape, int(steps or net.time_steps or len(net.layers)), samples,
                                opts["seed"]), None
    if opts["dataset"]:
        from snndeploy.data.datasets import dataset_info
        from snndeploy.sim_inputs import dataset_inputs

        steps = int(steps or net.time_steps or dataset_info(opts["dataset"]).time_steps)
        inputs = dataset_inputs(opts["dataset"], net.input_shape, samples=samples, steps=steps, seed=opts["seed"],
                                net=net)
        return inputs.spikes, inputs.current
    if samples == ALL_SAMPLES:
        raise UserError("--samples all needs --dataset NAME or --inputs FILE (sampled inputs have no end)")
    return sample_inputs(net.input_shape, int(steps or net.time_steps or 25), samples, opts["rate"],
                         opts["seed"]), None


def _run_verify(model, net, opts: dict[str, Any]):
    from snndeploy.export.verify import plot_rasters, verify
    from snndeploy.lava_workers import default_workers

    x, currents = _verify_inputs(net, opts)
    rasters: list | None = [] if opts.get("plot") else None
    workers = default_workers() if opts["workers"] is None else opts["workers"]
    mode = resolve_precision(opts["precision"], opts["old_mode"])
    report = verify(model, net, x, mode=mode, probe=opts["probe"], sparse_below=opts["sparse_below"],
                    progress=not opts["as_json"], rasters=rasters, workers=workers, currents=currents)
    if rasters:
        plot_rasters(rasters, opts["plot"])
    return report


def _lava_description(net, sparse_below: float) -> dict:
    """What the Lava converter builds for ``net`` (processes per layer and their Loihi parameters)."""
    import numpy as np

    from snndeploy.export.ir import summary

    rows = summary(net)
    for row, layer in zip(rows, net.layers, strict=True):
        if layer.op == "dense":
            row["synapse"] = "Sparse" if row["density"] < sparse_below else "Dense"
        elif layer.op == "input":
            row["synapse"] = "Conv" if len(layer.in_shape) == 3 else "Sparse"
        else:
            row["synapse"] = "Conv"
        if layer.neuron.kind == "sigma_delta":
            row["neuron"] = _sd_description(layer)
            row["synapse"] = None if layer.op == "input" else row["synapse"]
            continue
        row["neuron"] = {"process": "LIF", "du": int(np.asarray(layer.neuron.i_decay).reshape(-1)[0]) - 1,
                         "dv": int(np.asarray(layer.neuron.v_decay).reshape(-1)[0]),
                         "vth": int(layer.neuron.vth_mant.reshape(-1)[0]) if layer.neuron.spiking else None,
                         "bias_exp": 6}
    return {"layers": rows, "sparse_below": sparse_below, "rebuild": "snndeploy.export.lava_net.build_lava("
            "snndeploy.export.nir_io.read_nir('network.nir'), spikes)"}


def _sd_description(layer) -> dict:
    """Lava's sigma-delta process of a layer (lava.proc.sdn) and its fixed-point parameters."""
    n = layer.neuron
    process = "Delta" if layer.op == "input" else "Sigma" if n.sigma_output else "SigmaDelta"
    return {"process": process, "vth": int(n.vth_mant.reshape(-1)[0]), "activation": n.activation,
            "cum_error": n.cum_error, "spike_exp": n.spike_exp, "state_exp": n.state_exp,
            "message_bits": n.message_bits}


def _write(net, target: str, out: Path, force: bool, sparse_below: float) -> dict:
    from snndeploy.atomic import atomic_dir

    if target == "nir":
        from snndeploy.export.nir_io import write_nir

        write_nir(net, out, force=force)
        return {}
    if target == "netx":
        from snndeploy.export.netx_io import write_netx

        write_netx(net, out, force=force)
        pools = [layer.name for layer in net.layers if layer.op == "pool"]
        return {"note": f"netx 0.6 cannot load pool layers {pools}; snndeploy's Lava converter runs them"} \
            if pools else {}
    if target == "onnx":
        from snndeploy.export.onnx_export import export_onnx

        export_onnx(net, out, force=force)
        return {}
    from snndeploy.export.nir_io import write_nir

    with atomic_dir(out, force=force) as tmp:
        write_nir(net, tmp / "network.nir", force=True)
        (tmp / "lava.json").write_text(json.dumps(_lava_description(net, sparse_below), indent=2) + "\n")
    return {}


def _verify_options(f):
    from snndeploy.export.lava_net import DEFAULT_SPARSE_BELOW

    options = [
        click.option("--sparse-below", type=click.FloatRange(0, 1.01), default=DEFAULT_SPARSE_BELOW,
                     show_default=True, help="Use Lava Sparse for dense layers with a weight density below this."),
        click.option("--inputs", type=click.Path(dir_okay=False), default=None,
                     help="Input spikes (.npy, (N, *input_shape, T)); default: sampled Bernoulli spikes."),
        click.option("--dataset", default=None,
                     help="Test samples of a local dataset (mnist, nmnist-small, ...), encoded as simulate does."),
        click.option("--samples", type=SampleCount(), default=None,
                     help="Samples to compare, or 'all' (default: all of --inputs, else 2)."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Lava runtimes in parallel processes (default: the cores available)."),
        click.option("--steps", type=click.IntRange(1), default=None, help="Steps per sample (default: spec's T)."),
        click.option("--rate", type=click.FloatRange(0, 1), default=0.2, show_default=True,
                     help="Spike probability of sampled inputs."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--probe", is_flag=True, help="Also compare current u and voltage v of every layer."),
        click.option("--plot", type=click.Path(dir_okay=False), default=None,
                     help="Write a PNG of every layer's torch and Lava spikes (sample 0), disagreements in red."),
        click.option("--dt", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Time step of a NIR graph that does not record one (other tools' graphs)."),
        click.option("--clip-weights", is_flag=True,
                     help="Clip netx weights outside Loihi's 8-bit range instead of refusing the file."),
        reset_option,
    ]
    for option in reversed(options):
        f = option(f)
    return precision_option(f)


def _human_export(result: dict) -> str:
    verb = "exported" if result["written"] else "NOT exported (verification failed)"
    lines = [f"{verb} {result['model']} -> {result['out']} ({result['to']}, {result['seconds']:.2f} s)"]
    for row in result["layers"]:
        lines.append(f"  {row['name']:<16} {row['op']:<6} {str(tuple(row['in'])):>16} -> {str(tuple(row['out'])):<14}"
                     f" density {row['density']:.3f}")
    lines += [f"  note: {note}" for note in [*result.get("notes", []), result.get("note")] if note]
    if result.get("verify_text"):
        lines.append(result["verify_text"])
    return "\n".join(lines)


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--to", "target", type=click.Choice(TARGETS), required=True, help="Output format.")
@click.option("--out", type=click.Path(), required=True, help="Output file (a folder for --to lava).")
@click.option("--verify", "do_verify", is_flag=True, help="Run torch and Lava on inputs and compare spike for spike.")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--quantize", "do_quantize", is_flag=True,
              help="Scale and round float weights onto Loihi's 8-bit grid, layer by layer (other tools' graphs).")
@_verify_options
@json_option
def export(model: str, target: str, out: str, do_verify: bool, force: bool, do_quantize: bool, as_json: bool,
           **opts: Any) -> None:
    """Export MODEL (spec, checkpoint, netx HDF5 or NIR) to NIR, a Lava network, netx HDF5 or ONNX."""
    out_path = check_output(out, force=force, folder=target == "lava")
    start = time.perf_counter()
    opened = open_model(model, model=do_verify, net=True, via_model=True, dt=opts["dt"],
                        clip_weights=opts["clip_weights"], reset=opts["reset"])
    torch_model, net = opened.model, opened.net
    if do_quantize:
        from snndeploy.export.quantize import quantize_net

        with naming(model):
            net, rows = quantize_net(net)
        opts["quantize_report"] = rows
        if do_verify:  # verify what is exported: the torch model of the quantized network
            torch_model = model_of_net(net, Path(model))
    # nothing is verified or written from a network with bad values; --clip-weights fits weights to 8 bits
    net = checks.check_net(net, model, integer_ranges=opts["clip_weights"], clip_weights=opts["clip_weights"])
    from snndeploy.export.ir import summary

    if target == "lava" or do_verify:  # Lava must hold the network in the precision asked for: refuse it now
        from snndeploy.export.lava_net import check_buildable

        with naming(model):
            check_buildable(net, resolve_precision(opts["precision"], opts["old_mode"]))
    result: dict[str, Any] = {"model": model, "to": target, "out": str(out_path), "layers": summary(net),
                              "notes": list(net.meta.get("notes", []))}
    if do_quantize:
        result["quantize"] = opts.pop("quantize_report")
    agree = True
    if do_verify:  # verify first, write only what agrees: a failed check leaves no valid-looking file
        from snndeploy.export.verify import describe

        report = _run_verify(torch_model, net, {**opts, "as_json": as_json})
        result["verify"] = report.to_dict()
        result["verify_text"] = describe(report)
        agree = report.agree
    if agree:
        with naming(model):  # what a format cannot express is the model's problem
            result.update(_write(net, target, out_path, force, opts["sparse_below"]))
    else:
        result["note"] = f"verification failed: nothing was written to {out_path}"
    result["written"] = agree
    result["seconds"] = time.perf_counter() - start
    if as_json:
        result.pop("verify_text", None)
    emit(result, as_json, _human_export)
    if not agree:
        raise CommandExit(1)


@click.command("verify")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("exported", type=click.Path())
@_verify_options
@json_option
def verify_command(model: str, exported: str, as_json: bool, **opts: Any) -> None:
    """Compare the torch MODEL with the Lava network of EXPORTED (.nir, netx HDF5 or a Lava export folder)."""
    from snndeploy.export.verify import describe

    opened = open_model(model, model=True, net=True, dt=opts["dt"], clip_weights=opts["clip_weights"],
                        reset=opts["reset"])
    torch_model, own = opened.model, opened.net
    net = open_model(exported, model=False, net=True, via_model=True, dt=opts["dt"],
                     clip_weights=opts["clip_weights"], reset=opts["reset"]).net
    if tuple(own.input_shape) != tuple(net.input_shape):
        raise UserError(f"input shapes differ: {own.input_shape} vs {net.input_shape}", exported)
    from snndeploy.export.lava_net import check_buildable

    with naming(exported):
        check_buildable(net, resolve_precision(opts["precision"], opts["old_mode"]))
    report = _run_verify(torch_model, net, {**opts, "as_json": as_json})
    result = {"model": model, "exported": exported, **report.to_dict()}
    emit(result, as_json, lambda r: describe(report))
    if not report.agree:
        raise CommandExit(1)
