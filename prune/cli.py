"""``snndeploy prune MODEL --method M --sparsity S [--structured] --data D --out DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from snndeploy.atomic import check_output, set_aside
from snndeploy.cli_support import COUNT, emit, json_option
from snndeploy.data.datasets import dataset_info
from snndeploy.errors import UserError

METHOD_NAMES = ("criticality", "magnitude", "gmp", "imp", "random", "slimming", "l1filter", "sca")
OUTPUTS = ("prune_report.json", "prune_report.png", "model.pt", "spec.yaml")
METHOD_NAMES += ("pq", "fixed", "set", "rigl")  # sparse from scratch: snndeploy.prune.pq and .dst
METHOD_NAMES += ("gradr", "deepr", "soft_deepr")  # learned connectivity: snndeploy.prune.gradr and .deepr
SCOPE_NAMES = ("neuron", "layer", "global")


def _remember_scope(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta["prune.scope"] = value


def _remember_alpha(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    ctx.meta["prune.alpha"] = value


def _human(result: dict) -> str:
    r = result["report"]
    lines = [f"{r['method']} ({'structured' if r['structured'] else 'unstructured'}) -> {result['out']}",
             f"  accuracy       {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f}",
             f"  sparsity       weights {r['sparsity']['weights']:.4f}, channels {r['sparsity']['channels']:.4f}",
             f"  live weights   {r['model']['live_weights']} of {r['model']['weights']}; "
             f"neurons {r['model']['neurons']}",
             f"  SynOps/sample  {r['synops_per_sample']['total']:.0f}",
             f"  cost           {r['cost']['epochs']} epochs, {r['cost']['optimizer_steps']} optimizer steps, "
             f"{r['cost']['wall_s']:.1f} s"]
    last = r["history"][-1] if r["history"] else {}
    if "connectivity_quantized" in last:  # rewiring methods
        lines.append(f"  connectivity   {last['connectivity']:.4f} ({last['connectivity_quantized']:.4f} "
                     "after 8-bit quantisation)")
    for layer in r["sparsity"]["per_layer"]:
        lines.append(f"    {layer['layer']:<10} {layer['kind']:<6} sparsity {layer['sparsity']:.4f}  "
                     f"channels {layer['live_channels']}/{layer['channels']}")
    return "\n".join(lines)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--method", "method_name", type=click.Choice(METHOD_NAMES), required=True, help="Pruning method.")
@click.option("--sparsity", "--target-sparsity", "sparsity", type=click.FloatRange(0, 1, max_open=True),
              help="Target sparsity: fraction of weights (unstructured) or channels (--structured) removed.")
@click.option("--keep-channels", type=click.FloatRange(0, 1, min_open=True),
              help="Fraction of channels/neurons to keep: the same as --structured --sparsity 1-F.")
@click.option("--structured", is_flag=True, help="Prune whole channels/neurons and shrink the model physically.")
@click.option("--data", "dataset", required=True, help="Dataset for fine-tuning and evaluation (e.g. mnist, nmnist).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Method config YAML (hyperparameters; defaults are the method's).")
@click.option("--scope", type=click.Choice(SCOPE_NAMES), expose_value=False, callback=_remember_scope,
              help="Ranking/rewiring scope unit (neuron: per output neuron, for pq, fixed, set, rigl); overrides "
                   "the config's scope.")
@click.option("--alpha", type=float, expose_value=False, callback=_remember_alpha,
              help="gradr: Laplace prior strength; deepr, soft_deepr: L1 penalty (overrides the config's alpha).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--force", is_flag=True, help="Start over, replacing a previous run in --out.")
@click.option("--batch-size", type=COUNT, default=64, show_default=True)
@click.option("--subset", type=COUNT, help="Use only this many training samples.")
@click.option("--test-subset", type=COUNT, help="Use only this many test samples.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@json_option
def prune(model: str, method_name: str, sparsity: float | None, keep_channels: float | None, structured: bool,
          dataset: str, out_dir: str, config_path: str | None, resume: bool, force: bool, batch_size: int,
          subset: int | None, test_subset: int | None, no_progress: bool, as_json: bool) -> None:
    """Prune MODEL (spec YAML, training checkpoint or netx HDF5) to --sparsity with --method, fine-tuning on --data."""
    import snndeploy.prune.deepr  # noqa: F401  (registers --method gradr, deepr, soft_deepr)
    import snndeploy.prune.pq  # noqa: F401  (registers --method pq, fixed, set, rigl)
    from snndeploy.prune import sca  # noqa: F401  (registers --method sca)
    from snndeploy.prune.methods import get_method

    if keep_channels is not None:
        if sparsity is not None:
            raise UserError("give --sparsity or --keep-channels, not both")
        sparsity, structured = 1.0 - keep_channels, True
    if sparsity is None:
        raise UserError("--sparsity (or --keep-channels) is required")
    method = get_method(method_name)
    if method.structured is True and not structured:
        structured = True  # slimming and L1-filter pruning remove channels by definition
    out = check_output(out_dir, force=True, folder=True)
    dataset_info(dataset)  # an unknown name is refused before anything runs
    from snndeploy.prune.config import load_config

    config = load_config(method.config_class, config_path)
    config = snndeploy.prune.dst.with_scope(method, config, click.get_current_context().meta.get("prune.scope"))
    config = snndeploy.prune.gradr.with_alpha(method, config, click.get_current_context().meta.get("prune.alpha"))
    _check_out(out, resume, force)
    import torch

    from snndeploy.models.load import load_model

    torch.manual_seed(config.seed)  # a spec is initialised randomly: seed first so runs from a spec repeat
    net = load_model(model)
    from snndeploy.prune.runner import STATE_FILE

    # --force: the previous run's files are put back if this one fails; deleted only once it has finished
    with set_aside(out, [STATE_FILE, *OUTPUTS] if force else []):
        result = run_prune(net, method, config, sparsity, structured, dataset, out, source=str(model),
                           resume=resume, batch_size=batch_size, subset=subset, test_subset=test_subset,
                           progress=not no_progress, quiet=as_json)
    emit(result, as_json, _human)


def _check_out(out: Path, resume: bool, force: bool) -> None:
    from snndeploy.prune.runner import STATE_FILE

    previous = [name for name in (STATE_FILE, *OUTPUTS) if (out / name).exists()]
    if resume and force:
        raise UserError("--resume and --force exclude each other")
    if previous and not resume and not force:
        raise UserError(f"already holds a pruning run ({', '.join(previous)}); pass --resume to continue it "
                        "or --force to start over", out)


def run_prune(net, method, config, sparsity: float, structured: bool, dataset: str, out: Path, *, source: str,
              resume: bool = False, batch_size: int = 64, subset: int | None = None, test_subset: int | None = None,
              progress: bool = True, quiet: bool = False) -> dict:
    """Run one pruning job and write its outputs into ``out``; returns the result dict the CLI prints."""
    import torch

    from snndeploy.prune.distill import make_objective, recorded_training
    from snndeploy.prune.finetune import DatasetTrainer
    from snndeploy.prune.report import write_report
    from snndeploy.prune.runner import Runner, RunSpec
    from snndeploy.train.checkpoint import make_checkpoint, save_checkpoint

    if method.structured is False and structured:
        raise UserError(f"method {method.name} has no structured mode")
    torch.manual_seed(config.seed)
    objective = make_objective(config, net, recorded_training(source))
    trainer = DatasetTrainer(dataset, net, batch_size=batch_size, subset=subset, test_subset=test_subset,
                             seed=config.seed, progress=progress, objective=objective)
    say = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    runner = Runner(RunSpec(method, config, sparsity, structured, source), net, trainer, out, progress=say)
    result = runner.run(resume=resume)
    paths = write_report(result.report, out)
    ckpt = make_checkpoint(result.net, epoch=result.report["cost"]["epochs"],
                           extra={"pruning": {"method": method.name, "target_sparsity": sparsity,
                                              "structured": structured}})
    paths["model"] = save_checkpoint(out / "model.pt", ckpt)
    if getattr(result.net, "spec", None) is not None:
        from snndeploy.models.spec import save_spec

        paths["spec"] = save_spec(result.net.spec, out / "spec.yaml")
    return {"out": str(out), "files": {k: str(v) for k, v in paths.items()}, "report": result.report}
