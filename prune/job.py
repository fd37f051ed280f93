"""One pruning job as a library call: ``run_prune(net, PruneJob(...))``, used by ``snndeploy prune``, the pipeline
and the benchmarks. It fine-tunes on a dataset, writes ``prune_report.json/png``, ``model.pt`` and ``spec.yaml``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from snndeploy.errors import UserError
from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
from snndeploy.models.spec import save_spec
from snndeploy.prune.config import PruneConfig, with_lr_rule
from snndeploy.prune.distill import make_objective, recorded_training
from snndeploy.prune.finetune import DatasetTrainer
from snndeploy.prune.methods import Method
from snndeploy.prune.report import write_report
from snndeploy.prune.runner import STATE_FILE, Runner, RunSpec
from snndeploy.train import distributed

OUTPUTS = ("prune_report.json", "prune_report.png", "model.pt", "spec.yaml")


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PruneJob:
    """What to prune how: the method and its config, the target, the data to fine-tune on and where to write."""

    method: Method
    config: PruneConfig
    sparsity: float
    structured: bool
    dataset: str
    out: Path
    source: str  # the model file, recorded in the report
    resume: bool = False
    batch_size: int = 64
    subset: int | None = None
    test_subset: int | None = None
    progress: bool = True
    log: Callable[[str], None] | None = _to_stderr  # None: quiet


def check_out(out: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a previous run in ``out`` unless resuming it or starting over (``force``: the caller
    sets the old files aside, :func:`snndeploy.atomic.set_aside`)."""
    previous = [name for name in (STATE_FILE, *OUTPUTS) if (out / name).exists()]
    if resume and force:
        raise UserError("--resume and --force exclude each other")
    if previous and not resume and not force:
        raise UserError(f"already holds a pruning run ({', '.join(previous)}); pass --resume to continue it "
                        "or --force to start over", out)


def run_prune(net, job: PruneJob) -> dict:
    """Run one pruning job and write its outputs into ``job.out``; returns the result dict the CLI prints."""
    method, config = job.method, job.config
    if method.structured is False and job.structured:
        raise UserError(f"method {method.name} has no structured mode")
    torch.manual_seed(config.seed)
    recorded = recorded_training(job.source)
    config = with_lr_rule(config, imported=recorded is None)
    objective = make_objective(config, net, recorded)
    trainer = DatasetTrainer(job.dataset, net, batch_size=job.batch_size, subset=job.subset,
                             test_subset=job.test_subset, seed=config.seed, progress=job.progress,
                             objective=objective)
    say = job.log or (lambda _m: None)
    runner = Runner(RunSpec(method, config, job.sparsity, job.structured, job.source), net, trainer, job.out,
                    progress=say)
    result = runner.run(resume=job.resume)
    if not distributed.is_main():  # under torchrun rank 0 writes the report and the model
        distributed.barrier()
        return {"out": str(job.out), "files": {}, "report": result.report}
    paths = write_report(result.report, job.out)
    epochs = result.report["cost"]["epochs"]  # a fraction with fractional rounds; "epoch": whole ones
    ckpt = make_checkpoint(result.net, epoch=int(epochs),
                           extra={"pruning": {"method": method.name, "target_sparsity": job.sparsity,
                                              "structured": job.structured, "epochs": epochs}})
    paths["model"] = save_checkpoint(job.out / "model.pt", ckpt)
    if getattr(result.net, "spec", None) is not None:
        paths["spec"] = save_spec(result.net.spec, job.out / "spec.yaml")
    distributed.barrier()
    return {"out": str(job.out), "files": {k: str(v) for k, v in paths.items()}, "report": result.report}
