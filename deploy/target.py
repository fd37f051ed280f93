"""``snndeploy deploy --target loihi2``: run on Loihi 2 where lava-loihi is installed, else write a job bundle.

Both paths start the same way: the network runs on Lava's CPU backend in bit-accurate ``fixed_pt`` over the
inputs (:mod:`snndeploy.simulate`), and a bundle is written atomically: the network as netx HDF5 (and NIR),
the inputs, the expected output, the CPU run's activity, ``bundle.json`` and ``run_loihi2.py``, a standalone
script that builds the netx network with ``Loihi2HwCfg`` (or ``Loihi2SimCfg`` with ``--backend cpu``),
runs all samples back to back with netx's staggered resets and compares the output with the expected one.
With lava-loihi importable the script is then run here on the hardware and its report returned; without,
the command stops with :data:`EXIT_NO_LOIHI` and says where the bundle is.

The script is generated from ``templates/loihi2_run.py.tmpl``; it is kept as a template (not a ``.py``) because
Lava imports every Python file in the folder of a process it compiles.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

import click
import numpy as np

from snndeploy import __version__
from snndeploy.atomic import atomic_dir, check_output, write_json, write_text
from snndeploy.cli_support import COUNT, POSITIVE, CommandExit, emit, json_option
from snndeploy.errors import UserError, naming
from snndeploy.export.ir import LoihiNet
from snndeploy.export.lava_net import check_buildable
from snndeploy.export.netx_io import write_netx
from snndeploy.export.nir_io import write_nir
from snndeploy.lava_runner import LavaRunError
from snndeploy.loader import load_net
from snndeploy.loihi import lava_loihi_available
from snndeploy.sim_inputs import Inputs, prepare
from snndeploy.sim_outputs import activity_dict
from snndeploy.simulate import SimResult, separate_runs, simulate_net

TARGETS = ("loihi2",)
EXIT_NO_LOIHI = 3  # the input was fine, but Loihi 2 is not reachable here: a job bundle was written instead
EXIT_DIFFERENT = 1  # the hardware ran and its output differs from the CPU fixed-point run
TEMPLATES = Path(__file__).resolve().parent / "templates"
SCRIPT = "run_loihi2.py"
NETX_RESET_OFFSET = 1  # netx resets layer j at steps == offset + 1 + j (mod T): one step after snndeploy's Reset
DEFAULT_RANDOM = {"samples": 4, "steps": 50, "rate": 0.2, "seed": 0}
FILES = {"network_file": "network.net", "nir_file": "network.nir", "inputs_file": "inputs.npy",
         "expected_file": "expected_output.npy", "labels_file": "labels.npy"}


def random_inputs(net: LoihiNet, steps: int | None, samples: int | None, seed: int) -> Inputs:
    """Bernoulli spikes (documented seed and rate) when no inputs are given: enough to compare two backends."""
    steps = int(steps or net.time_steps or DEFAULT_RANDOM["steps"])
    samples = int(samples or DEFAULT_RANDOM["samples"])
    rng = np.random.default_rng(seed)
    x = (rng.random((samples, *net.input_shape, steps)) < DEFAULT_RANDOM["rate"]).astype(np.uint8)
    return Inputs(x, None, f"random spikes (rate {DEFAULT_RANDOM['rate']}, seed {seed})")


def check_deployable(net: LoihiNet) -> None:
    """What the netx path to Loihi 2 cannot take: pooling layers, and input layers with neurons (netx drives
    those through their bias only; its ``inp`` port is not connected to them, so spike inputs would be lost)."""
    pools = [layer.name for layer in net.layers if layer.op == "pool"]
    if pools:
        raise UserError(f"netx cannot load pooling layers ({', '.join(pools)}), so this network cannot be "
                        "deployed to Loihi 2 through netx; use strided convolutions instead")
    if net.layers[0].op == "input":
        raise UserError(f"{net.layers[0].name} is an input layer with neurons, which netx feeds through its bias "
                        "only: spike inputs cannot reach it on Loihi 2; export the network without it")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render(name: str, values: dict[str, Any]) -> str:
    return Template((TEMPLATES / name).read_text()).substitute({k: str(v) for k, v in values.items()})


def write_bundle(out: Path, net: LoihiNet, inputs: Inputs, result: SimResult, *, model: str, reason: str,
                 force: bool = False) -> Path:
    """Write the job bundle folder ``out`` atomically (an existing one only with ``force``)."""

    check_deployable(net)
    samples, steps = result.samples, result.steps
    layer = len(net.layers) - 1
    values = {**FILES, "version": __version__, "network": net.name, "script": SCRIPT,
              "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "reason": reason,
              "layers": len(net.layers), "input_shape": tuple(net.input_shape), "output_shape": tuple(net.output_shape),
              "inputs_shape": tuple(inputs.spikes.shape), "expected_shape": tuple(result.output.shape),
              "samples": samples, "steps": steps, "total_steps": samples * steps,
              "netx_reset_offset": NETX_RESET_OFFSET, "first_steps": layer + 1}
    with atomic_dir(out, force=force) as tmp:
        write_netx(net, tmp / FILES["network_file"], force=True)
        nir_note = _write_nir(net, tmp / FILES["nir_file"])
        np.save(tmp / FILES["inputs_file"], inputs.spikes.astype(np.uint8))
        np.save(tmp / FILES["expected_file"], result.output.astype(np.uint8))
        if inputs.labels is not None:
            np.save(tmp / FILES["labels_file"], inputs.labels)
        write_json(tmp / "expected_activity.json", activity_dict(result, model))
        write_text(tmp / SCRIPT, render("loihi2_run.py.tmpl", values))
        write_text(tmp / "README.md", render("loihi2_README.md.tmpl", values))
        manifest = {
            "format": "snndeploy-loihi2-bundle/1", "snndeploy": __version__, "model": model, "network": net.name,
            "target": "loihi2", "input": inputs.source, "samples": samples, "steps_per_sample": steps,
            "input_shape": list(net.input_shape), "output_shape": list(net.output_shape),
            "output_layer_index": layer, "netx_reset_offset": NETX_RESET_OFFSET, "reset_interval": steps,
            "separate_runs": separate_runs(net) is not None,
            "alignment": f"sample k = run steps [k*{steps}, (k+1)*{steps}); its first (output layer index + 1) "
                         "steps are zeroed (previous sample's tail)",
            "expected_from": "snndeploy simulate, Lava Loihi2SimCfg fixed_pt", "nir": nir_note,
            "files": {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()},
        }
        write_json(tmp / "bundle.json", manifest)
        for path in tmp.iterdir():
            path.chmod(0o755 if path.name == SCRIPT else 0o644)
        tmp.chmod(0o755)
    return out


def _write_nir(net: LoihiNet, path: Path) -> str:
    """NIR beside the netx file; the run script does not need it, so a network NIR cannot express is noted."""
    try:
        write_nir(net, path, force=True)
        return path.name
    except (ImportError, UserError, ValueError) as exc:
        return f"not written: {exc}"


def run_bundle(bundle: Path, *, backend: str = "loihi2", timeout_s: float = 600.0) -> dict[str, Any]:
    """Run the bundle's script in its own process group; stopped (SIGINT, then SIGKILL) on timeout or Ctrl-C."""
    cmd = [sys.executable, str(bundle / SCRIPT), "--backend", backend, "--json", "--timeout", str(timeout_s)]
    proc = subprocess.Popen(cmd, cwd=bundle, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s + 60)
    except BaseException:
        _stop_group(proc)
        raise
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, 1) or not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        raise click.ClickException(f"the {backend} run of {bundle / SCRIPT} failed (exit {proc.returncode}): {tail}")
    return json.loads(lines[-1])


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def _human(result: dict[str, Any]) -> str:
    lines = []
    hw = result.get("hardware")
    if hw is not None:
        verdict = "equals" if hw["equal"] else f"differs from ({hw['mismatches']} spike bins)"
        lines.append(f"Loihi 2: {hw['output_spikes']} output spikes; {verdict} the CPU fixed-point run")
    else:
        lines.append(f"Loihi 2 not available here: {result['reason']}")
    lines.append(f"  CPU fixed-point run: {result['samples']} sample(s) x {result['steps']} steps, "
                 f"{result['expected_spikes']} output spikes")
    lines.append(f"  job bundle: {result['bundle']} (run `python {SCRIPT}` there on an INRC system)")
    if result.get("warning"):
        lines.append(f"  warning: {result['warning']}")
    return "\n".join(lines)


@click.command("deploy")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(TARGETS), default="loihi2", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Bundle folder (default: ./<model name>-loihi2-bundle).")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Spike inputs (.npy/.npz); default: random spikes with a fixed seed.")
@click.option("--dataset", help="Use the first --samples test samples of a local dataset as inputs.")
@click.option("--samples", type=COUNT, help="How many samples to include (default: 4).")
@click.option("--steps", type=COUNT, help="Time steps per sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random or rate-coded inputs.")
@click.option("--timeout", "timeout_s", type=POSITIVE, default=600.0, show_default=True,
              help="Seconds a run may take before it is stopped.")
@click.option("--force", is_flag=True, help="Overwrite an existing bundle folder.")
@json_option
def deploy(model: Path, target: str, out: Path | None, input_path: Path | None, dataset: str | None,
           samples: int | None, steps: int | None, seed: int, timeout_s: float, force: bool, as_json: bool) -> None:
    """Run MODEL on Loihi 2, or write a job bundle for INRC when lava-loihi is not installed.

    Exit codes: 0 = ran on Loihi 2, output equal to the CPU fixed-point run; 1 = it differs, or a run failed;
    2 = bad input; 3 = lava-loihi is not installed here, the job bundle was written instead.
    """
    out = out or Path(f"{model.stem}-{target}-bundle")
    check_output(out, force=force, folder=True)
    if input_path is None and dataset is None:
        net = load_net(model)
        inputs = random_inputs(net, steps, samples, seed)
    else:
        net, inputs = prepare(model, input_path, dataset, samples or DEFAULT_RANDOM["samples"], steps, seed)
    with naming(model):  # before the CPU run: what netx or Loihi's fixed point cannot take is the model's problem
        check_deployable(net)
        check_buildable(net, "fixed_pt")
    available, reason = lava_loihi_available()

    started = time.perf_counter()
    try:
        result = simulate_net(net, inputs.spikes, mode="fixed_pt", timeout_s=timeout_s, progress=not as_json,
                              input_bias=inputs.bias)
    except LavaRunError as exc:
        raise click.ClickException(str(exc)) from exc
    write_bundle(out, net, inputs, result, model=str(model), reason=reason, force=force)
    report: dict[str, Any] = {
        "target": target, "model": str(model), "network": net.name, "available": available, "reason": reason,
        "bundle": str(out), "samples": result.samples, "steps": result.steps,
        "expected_spikes": int(result.output.sum()), "cpu_seconds": time.perf_counter() - started,
        "hardware": None,
    }
    if not result.output.any():
        report["warning"] = ("the expected output has no spikes, so comparing with it shows little; "
                             "use more --steps or real inputs (--input/--dataset)")
    if available:
        report["hardware"] = run_bundle(out, backend="loihi2", timeout_s=timeout_s)
        emit(report, as_json, _human)
        if not report["hardware"]["equal"]:
            raise CommandExit(EXIT_DIFFERENT)
        return
    report["exit_code"] = EXIT_NO_LOIHI
    emit(report, as_json, _human)
    click.echo(f"snndeploy: {reason}; wrote the job bundle {out} instead (exit code {EXIT_NO_LOIHI})", err=True)
    raise CommandExit(EXIT_NO_LOIHI)
