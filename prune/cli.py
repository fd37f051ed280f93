"""``snndeploy prune MODEL --method M --sparsity S [--structured] --data D --out DIR``."""

from __future__ import annotations

import click
import torch

from snndeploy.atomic import check_output, set_aside
from snndeploy.cli_support import COUNT, emit, json_option
from snndeploy.data.datasets import dataset_info
from snndeploy.errors import UserError
from snndeploy.loader import load_model
from snndeploy.prune.config import load_config, with_scope
from snndeploy.prune.gradr import with_alpha
from snndeploy.prune.job import OUTPUTS, PruneJob, check_out, run_prune
from snndeploy.prune.registry import find_method, method_names
from snndeploy.prune.runner import STATE_FILE
from snndeploy.prune.sparse import SCOPES
from snndeploy.train import distributed

SHORTFALL_HINTS = {  # the methods that learn their sparsity instead of cutting to it
    "gradr": "Grad R learns its connectivity; give it a larger --alpha (docs/prune.md: 0.25 for 90 % in 2 epochs "
             "on lava-dl's MNIST network) or more epochs",
    "pq": "PQ's index sets each iteration's ratio; give it more iterations",
    "fixed": "give the fixed ratio more iterations",
}


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
    if not r["target_reached"]:
        reached = r["sparsity"]["channels" if r["structured"] else "weights"]
        lines.append(f"  not reached    target sparsity {r['target_sparsity']:.4f}, ended at {reached:.4f}: "
                     + SHORTFALL_HINTS.get(r["method"], "the per-layer minimum widths keep more; see the history"))
    last = r["history"][-1] if r["history"] else {}
    if "connectivity_quantized" in last:  # rewiring methods
        lines.append(f"  connectivity   {last['connectivity']:.4f} ({last['connectivity_quantized']:.4f} "
                     "after 8-bit quantisation)")
    for layer in r["sparsity"]["per_layer"]:
        lines.append(f"    {layer['layer']:<10} {layer['kind']:<6} sparsity {layer['sparsity']:.4f}  "
                     f"channels {layer['live_channels']}/{layer['channels']}  "
                     f"effective weights {layer['effective_weights']}/{layer['live_weights']}")
    return "\n".join(lines)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--method", "method_name", type=click.Choice(method_names()), required=True, help="Pruning method.")
@click.option("--sparsity", "--target-sparsity", "sparsity", type=click.FloatRange(0, 1, max_open=True),
              help="Target sparsity: fraction of weights (unstructured) or channels (--structured) removed.")
@click.option("--keep-channels", type=click.FloatRange(0, 1, min_open=True),
              help="Fraction of channels/neurons to keep: the same as --structured --sparsity 1-F.")
@click.option("--structured", is_flag=True, help="Prune whole channels/neurons and shrink the model physically.")
@click.option("--data", "dataset", required=True, help="Dataset for fine-tuning and evaluation (e.g. mnist, nmnist).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Method config YAML (hyperparameters; defaults are the method's).")
@click.option("--scope", type=click.Choice(SCOPES), expose_value=False, callback=_remember_scope,
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
    if keep_channels is not None:
        if sparsity is not None:
            raise UserError("give --sparsity or --keep-channels, not both")
        sparsity, structured = 1.0 - keep_channels, True
    if sparsity is None:
        raise UserError("--sparsity (or --keep-channels) is required")
    method = find_method(method_name)
    if method.structured is True and not structured:
        structured = True  # slimming and L1-filter pruning remove channels by definition
    out = check_output(out_dir, force=True, folder=True)
    dataset_info(dataset)  # an unknown name is refused before anything runs
    config = load_config(method.config_class, config_path)
    config = with_scope(method.name, config, click.get_current_context().meta.get("prune.scope"))
    config = with_alpha(method, config, click.get_current_context().meta.get("prune.alpha"))
    check_out(out, resume, force)
    torch.manual_seed(config.seed)  # a spec is initialised randomly: seed first so runs from a spec repeat
    net = load_model(model)
    distributed.setup()  # under torchrun: DDP fine-tuning, scores reduced across ranks, rank 0 writes
    job = PruneJob(method, config, sparsity, structured, dataset, out, source=str(model), resume=resume,
                   batch_size=batch_size, subset=subset, test_subset=test_subset, progress=not no_progress,
                   log=None if as_json else lambda m: click.echo(m, err=True))
    # --force: the previous run's files are put back if this one fails; deleted only once it has finished
    main = distributed.is_main()  # known before teardown (afterwards every process reads as rank 0)
    try:
        with set_aside(out, [STATE_FILE, *OUTPUTS] if force and main else []):
            result = run_prune(net, job)
    finally:
        distributed.teardown()
    if main:
        emit(result, as_json, _human)
