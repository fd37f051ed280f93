"""``snndeploy pipeline``: train or load -> [fit] -> prune -> export (NIR hand-off) -> verify -> simulate -> estimate
-> report, one folder per stage, finished stages skipped on a rerun; and ``snndeploy compare`` across runs.

Every stage after export reads the exported ``network.nir``: NIR is the hand-off between the torch side and the
Lava / estimate side. A stage is skipped when its ``stage.json`` records the same fingerprint (its config slice
plus the fingerprints and results of the stages before it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from snndeploy.atomic import write_json
from snndeploy.cli_support import CommandExit, emit, json_option
from snndeploy.errors import UserError
from snndeploy.export import ir
from snndeploy.export.lava_net import import_lava
from snndeploy.export.netx_io import write_netx
from snndeploy.export.nir_io import write_nir
from snndeploy.export.onnx_export import export_onnx
from snndeploy.export.verify import plot_rasters, verify
from snndeploy.fit import fit_to_budget, parse_fit, split_fit
from snndeploy.hardware.estimate import EstimateJob, estimate_model
from snndeploy.hardware.report import plot
from snndeploy.lava_workers import default_workers
from snndeploy.loader import load_model, load_net, open_model
from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
from snndeploy.models.spec import load_spec, save_spec, spec_from_dict
from snndeploy.pipeline_config import PipelineConfig, config_to_dict, load_pipeline_config, resolve_load
from snndeploy.prune.config import config_from_dict
from snndeploy.prune.job import PruneJob, run_prune
from snndeploy.prune.registry import find_method
from snndeploy.run_report import write_comparison, write_run_report
from snndeploy.sim_inputs import dataset_inputs
from snndeploy.sim_outputs import summarize, write_outputs
from snndeploy.simulate import simulate_net
from snndeploy.simulate_sd import sd_dataset_inputs, simulate_sd
from snndeploy.train.loop import predict
from snndeploy.train.run import EvalJob, TrainJob, run_evaluation, run_training

STAGES = ("model", "fit", "prune", "export", "verify", "simulate", "estimate", "report")
MARKER = "stage.json"
NIR_FILE = "network.nir"


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Run:
    """One pipeline run in ``out``: stage results so far and the chain of fingerprints."""
    config: PipelineConfig
    out: Path
    progress: bool = True
    log: Callable[[str], None] = print
    results: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    chain: str = ""

    def stage(self, name: str, settings: Any, body: Callable[[Path], dict]) -> dict:
        """Run ``body(folder)`` unless the folder already holds this exact stage; record and return its result."""
        folder = self.out / name
        fingerprint = _fingerprint({"stage": name, "settings": settings, "before": self.chain})
        marker = folder / MARKER
        if marker.is_file():
            recorded = json.loads(marker.read_text())
            if recorded.get("fingerprint") == fingerprint:
                self.log(f"[{name}] done before, skipped ({folder})")
                self.skipped.append(name)
                return self._record(name, fingerprint, recorded["result"])
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        self.log(f"[{name}] running")
        start = time.perf_counter()
        result = body(folder)
        result["seconds"] = round(time.perf_counter() - start, 2)
        write_json(marker, {"stage": name, "fingerprint": fingerprint, "result": result})
        self.log(f"[{name}] finished in {result['seconds']:.1f} s")
        return self._record(name, fingerprint, result)

    def _record(self, name: str, fingerprint: str, result: dict) -> dict:
        self.results[name] = result
        self.chain = _fingerprint([self.chain, fingerprint, result])
        return result


# ----------------------------------------------------------------------------------------------------- stages
def _evaluate(checkpoint: Path, config: PipelineConfig, progress: bool) -> dict:
    return run_evaluation(checkpoint, EvalJob(data_name=config.data, test_subset=config.test_subset,
                                              seed=config.seed, progress=progress), load=load_model)


def model_stage(run: Run, folder: Path) -> dict:
    """Train the spec here, or load a trained model; either way leave ``model.pt`` and its test accuracy."""
    cfg, model = run.config, run.config.model
    if model.load is not None:
        net = load_model(resolve_load(model.load))
        checkpoint = save_checkpoint(folder / "model.pt", make_checkpoint(net, extra={"source": model.load}))
        metrics = _evaluate(checkpoint, cfg, run.progress)
        return {"checkpoint": str(checkpoint), "source": model.load, "accuracy": metrics["accuracy"],
                "spike_rate": metrics.get("spike_rate"), "trained": False}
    spec = spec_from_dict(model.spec) if isinstance(model.spec, dict) else load_spec(model.spec)
    spec_path = save_spec(spec, folder / "spec.yaml")
    job = TrainJob(out=folder / "train", data_name=cfg.data, seed=cfg.seed, test_subset=cfg.test_subset, force=True,
                   progress=run.progress, **model.train_options())
    summary = run_training(spec_path, job, load=load_model, log=run.log)
    return {"checkpoint": summary["checkpoint"], "source": "trained here", "accuracy": summary["test"]["accuracy"],
            "spike_rate": summary["test"].get("spike_rate"), "trained": True, "epochs": summary["epochs"],
            "train_seconds": summary["seconds"], "seconds_per_epoch": summary["seconds_per_epoch"]}


def fit_stage(run: Run, folder: Path) -> dict:
    prune = run.config.prune
    result = fit_to_budget(Path(run.results["model"]["checkpoint"]), run.config.fit, structured=prune.structured,
                           log=run.log)
    write_json(folder / "fit.json", result)
    return result


def prune_stage(run: Run, folder: Path) -> dict:
    prune, fitted = _effective_prune(run)
    method = find_method(prune.method)
    structured = prune.structured or method.structured is True
    settings = {"seed": run.config.seed, **prune.config, **fitted}
    config = config_from_dict(method.config_class, settings, "pipeline prune.config")
    net = load_model(run.results["model"]["checkpoint"])
    job = PruneJob(method, config, float(prune.sparsity), structured, run.config.data, folder,
                   source=run.results["model"]["checkpoint"], batch_size=prune.batch_size, subset=prune.subset,
                   test_subset=prune.test_subset, progress=run.progress,
                   log=(lambda m: click.echo(m, err=True)) if run.progress else None)
    result = run_prune(net, job)
    report = result["report"]
    return {"checkpoint": result["files"]["model"], "method": report["method"], "structured": report["structured"],
            "target_sparsity": report["target_sparsity"], "accuracy_before": report["accuracy_before"],
            "accuracy_after": report["accuracy_after"], "sparsity": report["sparsity"], "model": report["model"],
            "synops_per_sample": report["synops_per_sample"], "cost": report["cost"], "history": report["history"],
            "plot": result["files"].get("plot")}


def _effective_prune(run: Run):
    """The prune settings and extra method config: ``--fit``'s ratio and per-layer scope when there was a fit."""
    prune = run.config.prune
    fit = run.results.get("fit")
    if not fit:
        return prune, {}
    return replace(prune, sparsity=fit["sparsity"], structured=fit["structured"]), {"scope": fit["scope"]}


def export_stage(run: Run, folder: Path) -> dict:
    source = (run.results.get("prune") or run.results["model"])["checkpoint"]
    net = load_net(source)
    files = {"nir": str(write_nir(net, folder / NIR_FILE, force=True))}
    if "netx" in run.config.export.formats:
        files["netx"] = str(write_netx(net, folder / "network.net", force=True))
    if "onnx" in run.config.export.formats:
        files["onnx"] = str(export_onnx(net, folder / "network.onnx", force=True))
    return {"source": source, "files": files, "layers": ir.summary(net)}


def _nir_path(run: Run) -> Path:
    return Path(run.results["export"]["files"]["nir"])


def _test_inputs(run: Run, net, samples: int):
    steps = int(net.time_steps or 25)
    if ir.is_sigma_delta(net):  # graded frames on netx's integer grid, not spikes
        return sd_dataset_inputs(run.config.data, net, samples=samples, steps=steps, seed=run.config.seed)
    # fed as the model records (a current into its input layer for lava-dl's bootstrap MNIST), else rate spikes
    return dataset_inputs(run.config.data, net.input_shape, samples=samples, steps=steps, seed=run.config.seed,
                          net=net)


def verify_stage(run: Run, folder: Path) -> dict:
    """The torch model rebuilt from the NIR file against the Lava network built from it, on real test samples."""
    opened = open_model(_nir_path(run), model=True, net=True)
    model, net = opened.model, opened.net
    inputs = _test_inputs(run, net, run.config.verify.samples)
    rasters: list = []
    report = verify(model, net, inputs.spikes, mode=run.config.verify.precision, progress=run.progress,
                    rasters=rasters, workers=default_workers(), currents=inputs.current)
    np.save(folder / "inputs.npy", inputs.spikes)
    plot_rasters(rasters, folder / "rasters.png")
    return {**report.to_dict(), "plot": str(folder / "rasters.png"), "input": inputs.source}


def simulate_stage(run: Run, folder: Path) -> dict:
    net = load_net(_nir_path(run))
    inputs = _test_inputs(run, net, run.config.simulate.samples)
    if ir.is_sigma_delta(net):
        result = simulate_sd(net, inputs.spikes, mode=run.config.simulate.precision)
    else:
        result = simulate_net(net, inputs.spikes, mode=run.config.simulate.precision, progress=run.progress,
                              workers=default_workers(), input_bias=inputs.bias)
    summary = summarize(result, inputs, model=str(_nir_path(run)))
    write_outputs(folder / "lava", result, inputs, summary, force=True)
    scale = ir.W_SCALE if ir.is_sigma_delta(net) else 1.0
    return {**summary, **_torch_on_same_samples(run, inputs, scale),
            "activity": str(folder / "lava" / "activity.json")}


def _torch_on_same_samples(run: Run, inputs, scale: float = 1.0) -> dict:
    """Accuracy of the torch (SLAYER) model on exactly the samples Lava ran, so the two read side by side;
    ``scale``: Lava input units per SLAYER unit (netx's input integers of a sigma-delta network: 64)."""
    if inputs.labels is None:
        return {}
    net = load_model((run.results.get("prune") or run.results["model"])["checkpoint"])
    x = torch.as_tensor(inputs.spikes, dtype=torch.float32) / scale
    x = x.reshape(x.shape[0], *net.spec.input_shape, x.shape[-1])
    if inputs.current is not None:  # a static current: the torch model gets the same values at every step
        current = torch.as_tensor(inputs.current, dtype=torch.float32).reshape(x.shape[:-1])
        x = current.unsqueeze(-1).expand(x.shape).contiguous()
    with torch.no_grad():
        pred = predict(net.eval()(x)).numpy()
    correct = int((pred == inputs.labels).sum())
    return {"torch_accuracy": correct / len(inputs.labels), "torch_correct": correct}


def estimate_stage(run: Run, folder: Path) -> dict:
    cfg = run.config.estimate
    targets, fitted = tuple(cfg.targets), {}
    if run.config.fit:  # the fitted target is judged against the --fit budget, the others against the config's
        target, fit_budget = split_fit(run.config.fit)
        targets, fitted = targets + ((target,) if target not in targets else ()), {target: fit_budget}
    job = EstimateJob(targets, cfg.budget, run.results["simulate"]["activity"], target_budgets=fitted)
    result = estimate_model(_nir_path(run), job)
    write_json(folder / "estimate.json", result)
    result["plot"] = str(plot(result, folder / "estimate.png"))
    return result


def report_stage(run: Run, folder: Path) -> dict:
    return write_run_report(run.config, run.results, folder)


# ------------------------------------------------------------------------------------------------------ driver
def run_pipeline(config: PipelineConfig, out: Path, *, progress: bool = True, log=print,
                 until: str | None = None) -> Run:
    """Run every stage (up to ``until``) into ``out``; returns the run with all stage results."""
    # Lava sets the 'fork' start method on import and fails if training (tqdm, DataLoader) set one first.
    import_lava()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config_to_dict(config))
    run = Run(config, out, progress=progress, log=log)
    plan: list[tuple[str, Any, Callable[[Run, Path], dict]]] = [
        ("model", asdict(config.model) | {"data": config.data, "seed": config.seed, "test": config.test_subset},
         model_stage),
    ]
    if config.fit:
        plan.append(("fit", {"fit": config.fit, "prune": asdict(config.prune)}, fit_stage))
    if config.prune is not None:
        plan.append(("prune", asdict(config.prune), prune_stage))
    plan += [("export", asdict(config.export), export_stage), ("verify", asdict(config.verify), verify_stage),
             ("simulate", asdict(config.simulate), simulate_stage), ("estimate", asdict(config.estimate),
                                                                     estimate_stage),
             ("report", {}, report_stage)]
    for name, settings, body in plan:
        run.stage(name, settings, lambda folder, body=body: body(run, folder))
        if name == until:
            break
    write_json(out / "summary.json", summarize_run(run))
    return run


def summarize_run(run: Run) -> dict:
    r = run.results
    estimate = r.get("estimate", {})
    return {
        "name": run.config.name, "out": str(run.out), "stages": list(r), "skipped": run.skipped,
        "dense_accuracy": r.get("model", {}).get("accuracy"),
        "pruned_accuracy": r.get("prune", {}).get("accuracy_after"),
        "sparsity": r.get("prune", {}).get("sparsity"),
        "fit": r.get("fit"),
        "verified": r.get("verify", {}).get("agree"),
        "verified_graded": any(row.get("variable") == "graded" for row in r.get("verify", {}).get("layers", [])),
        "lava_accuracy": r.get("simulate", {}).get("accuracy"),
        "torch_accuracy_same_samples": r.get("simulate", {}).get("torch_accuracy"),
        "lava_samples": r.get("simulate", {}).get("samples"),
        "targets": [{k: t.get(k) for k in ("target", "verdict", "cores", "cores_range", "chips")}
                    for t in estimate.get("targets", [])],
        "report": r.get("report", {}).get("html"),
        "seconds": {name: res.get("seconds") for name, res in r.items()},
    }


def _human(summary: dict) -> str:
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    lines = [f"pipeline {summary['name']} -> {summary['out']}",
             f"  dense accuracy   {pct(summary['dense_accuracy'])}",
             f"  pruned accuracy  {pct(summary['pruned_accuracy'])}"]
    if summary["sparsity"]:
        lines.append(f"  sparsity         weights {summary['sparsity']['weights']:.3f}, "
                     f"channels {summary['sparsity']['channels']:.3f}")
    if summary["fit"]:
        lines.append(f"  fit              {summary['fit']['summary']}")
    agreed = "yes, graded outputs equal at every layer and step" if summary["verified_graded"] else \
        "yes, spike for spike"
    lines.append(f"  verified on Lava {agreed if summary['verified'] else 'NO (see verify/)'}")
    if summary.get("torch_accuracy_same_samples") is not None:  # the same test samples, side by side
        lines.append(f"  torch / Lava     {pct(summary['torch_accuracy_same_samples'])} / "
                     f"{pct(summary['lava_accuracy'])} on the same {summary['lava_samples']} test samples")
    else:
        lines.append(f"  Lava accuracy    {pct(summary['lava_accuracy'])}")
    for t in summary["targets"]:
        lines.append(f"  {t['target']:<16} {t['verdict']}, {t['cores']} cores (range {t['cores_range']}), "
                     f"{t['chips']} chip(s)")
    if summary["skipped"]:
        lines.append(f"  skipped (done before): {', '.join(summary['skipped'])}")
    lines.append(f"  report           {summary['report']}")
    return "\n".join(lines)


@click.command()
@click.argument("config_path", metavar="[CONFIG]", required=False, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default: runs/<config name>).")
@click.option("--fit", help="Prune to a budget: TARGET:LIMIT=N, e.g. loihi2:cores=4 (overrides the config).")
@click.option("--until", type=click.Choice(STAGES), help="Stop after this stage.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@json_option
def pipeline(config_path: str | None, out: str | None, fit: str | None, until: str | None, no_progress: bool,
             as_json: bool) -> None:
    """Train or load, prune, export through NIR, verify and simulate on Lava, estimate on Loihi 2, and report.

    With no CONFIG it runs the embedded default: the MNIST MLP with criticality pruning. A rerun skips the stages
    that are already done with the same settings.
    """
    config, _where = load_pipeline_config(config_path)
    if fit:
        parse_fit(fit)  # a malformed --fit (or an unknown target or budget) is bad input before anything runs
        config = replace(config, fit=fit)
        if config.prune is None:
            raise UserError("--fit prunes to a budget: the config needs a 'prune' section (the method to use)")
    folder = Path(out) if out else Path("runs") / config.name
    log = (lambda _m: None) if as_json else (lambda m: click.echo(m, err=True))
    run = run_pipeline(config, folder, progress=not (no_progress or as_json), log=log, until=until)
    summary = summarize_run(run)
    emit(summary, as_json, _human)
    if run.results.get("verify") and not run.results["verify"]["agree"]:
        raise CommandExit(1)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="runs/compare", show_default=True)
@json_option
def compare(runs: tuple[str, ...], out: str, as_json: bool) -> None:
    """Put several pipeline runs (methods, sparsities) side by side: a table, compare.html and plots."""
    result = write_comparison([Path(r) for r in runs], Path(out))
    emit(result, as_json, lambda r: r["text"] + f"\n-> {r['html']}")
