"""Training and evaluation runs as library calls with typed configs: ``run_training(spec, TrainJob(...))`` and
``run_evaluation(model, EvalJob(...))``, used by ``snndeploy train`` / ``evaluate``, the pipeline and the
benchmarks. A run writes ``checkpoint.pt``, ``best.pt``, ``metrics.json``, ``training.png`` and ``spec.yaml``."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snndeploy.atomic import check_output, set_aside
from snndeploy.data.datasets import dataset_info, feed_for, make_splits
from snndeploy.errors import UserError
from snndeploy.models.build import SlayerNet
from snndeploy.models.spec import save_spec
from snndeploy.train import distributed
from snndeploy.train.loop import CHECKPOINT, Callback, TrainConfig, Trainer, evaluate, pick_device, write_metrics
from snndeploy.train.plot import plot_history

ENCODINGS = ("rate", "current")
LOSS_CHOICES = ("auto", "spike_rate", "spike_max", "cross_entropy")


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """The data a run reads and how it runs: what training and evaluation share."""

    data_name: str
    encoding: str | None = None  # None: what the model records, else rate
    max_rate: float = 1.0
    test_subset: int | None = None
    batch_size: int = 128
    seed: int = 0
    threads: int = 2
    device: str = "auto"
    progress: bool = False


@dataclass(frozen=True, kw_only=True)
class EvalJob(DataOptions):
    """The test set to evaluate on and how (``snndeploy evaluate``)."""


@dataclass(frozen=True, kw_only=True)
class TrainJob(DataOptions):
    """Every option of ``snndeploy train``: the data options, the loop settings and the output folder."""

    epochs: int
    out: Path
    batch_size: int = 32
    progress: bool = True
    subset: int | None = None
    val_fraction: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    loss: str = "auto"  # auto: spike_rate, or cross_entropy for an affine (voltage) readout
    true_rate: float = 0.2
    false_rate: float = 0.03
    resume: bool = False
    force: bool = False
    test: bool = True


def seed_everything(threads: int, seed: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def busy_warning(threads: int) -> str | None:
    """torch's OpenMP threads spin-wait; on an oversubscribed machine 2 threads can be several times slower than 1."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if threads > 1 and load > 1.5 * cores:
        return (f"note: this machine is busy (load {load:.1f} on {cores} cores); --threads 1 is likely faster "
                f"than --threads {threads}")
    return None


def check_out(out: Path, resume: bool, force: bool) -> None:
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise UserError("--resume: no checkpoint.pt in the output folder", out)
        return
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError("output folder exists and is not empty; pass --resume to continue or --force to replace",
                        out)


def run_training(spec: Path, job: TrainJob, *, load: Callable[[Path], SlayerNet],
                 log: Callable[[str], None] | None = print,
                 callbacks: Sequence[Callback] = ()) -> dict[str, Any] | None:
    """Train (or fine-tune) the model file ``spec``, opened by ``load`` (:func:`snndeploy.loader.load_model`) after
    seeding, so a spec's initial weights repeat; the summary on rank 0, None on other DDP ranks."""
    out = Path(job.out)
    dataset_info(job.data_name)  # an unknown name is refused before anything is printed or written
    if distributed.is_main():
        check_output(out, force=True, folder=True)
        check_out(out, job.resume, job.force)
    seed_everything(job.threads, job.seed)
    model = load(spec)
    net_spec = model.spec
    loss = job.loss
    if loss == "auto":
        loss = "cross_entropy" if net_spec.blocks[-1].kind == "affine" else "spike_rate"
    config = TrainConfig(epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, weight_decay=job.weight_decay,
                         lr_schedule=job.lr_schedule, loss=loss, true_rate=job.true_rate, false_rate=job.false_rate,
                         seed=job.seed, threads=job.threads, device=job.device)
    feed = feed_for(net_spec.io, job.encoding)
    # the checkpoint records how the model was fed and is read, for every later command
    net_spec = replace(net_spec, io=replace(net_spec.io, encoding=feed.encoding, readout=net_spec.readout,
                                            source=net_spec.io.source or f"trained on {job.data_name}"))
    model.spec = net_spec
    splits = make_splits(job.data_name, time_steps=net_spec.time_steps, encoding=feed.encoding, seed=job.seed,
                         val_fraction=job.val_fraction, subset=job.subset, test_subset=job.test_subset,
                         input_shape=net_spec.input_shape, max_rate=job.max_rate, normalize=feed.normalize)
    if splits.info.num_classes > net_spec.num_outputs:
        raise UserError(f"{net_spec.name} has {net_spec.num_outputs} outputs but {splits.info.name} has "
                        f"{splits.info.num_classes} classes", spec)
    warning = busy_warning(job.threads)
    if warning and log and distributed.is_main():
        log(warning)
    # --force: the old run's files are put back if this one fails; deleted only once it has finished
    with set_aside(out) if job.force and not job.resume and distributed.is_main() else contextlib.nullcontext():
        return _train(model, spec, job, config, splits, feed, log=log, callbacks=callbacks)


def _train(model: SlayerNet, spec: Path, job: TrainJob, config: TrainConfig, splits, feed, *,
           log: Callable[[str], None] | None, callbacks: Sequence[Callback]) -> dict[str, Any] | None:
    out, net_spec = Path(job.out), model.spec
    # Each rank draws different encodings/dropout; DDP broadcasts rank 0's initial weights.
    seed_everything(job.threads, job.seed + distributed.rank())
    trainer = Trainer(model, config, callbacks=callbacks, log=log, progress=job.progress)
    if job.resume:
        trainer.resume(out / CHECKPOINT)
    elif distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_spec(net_spec, out / "spec.yaml")
    distributed.barrier()
    start = time.perf_counter()
    history = trainer.fit(splits.train, splits.val, out_dir=out)
    elapsed = time.perf_counter() - start
    test_metrics = evaluate(trainer.model, splits.test, config=config, device=trainer.device) if job.test else None
    if not distributed.is_main():
        return None
    run = {"data": splits.info.name, "encoding": feed.encoding, "feed": feed.note, "subset": job.subset,
           "val_fraction": job.val_fraction, "train_samples": len(splits.train), "val_samples": len(splits.val),
           "test_samples": len(splits.test), "source": str(spec)}
    write_metrics(out, trainer, {"run": run, "test": test_metrics})
    plot_history(trainer.history, out / "training.png", f"{net_spec.name} on {splits.info.name}")
    epoch_seconds = [m["seconds"] for m in history] or [0.0]
    return {"model": net_spec.name, "data": splits.info.name, "out": str(out), "epochs": trainer.epoch,
            "seconds": round(elapsed, 3), "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
            "last_epoch": history[-1] if history else None, "test": test_metrics,
            "checkpoint": str(out / CHECKPOINT), "world_size": distributed.world_size()}


def run_evaluation(model_path: Path, job: EvalJob, *, load: Callable[[Path], SlayerNet]) -> dict[str, Any]:
    """Test accuracy, loss and spike rates of the model file ``model_path``, opened by ``load``."""
    dataset_info(job.data_name)
    seed_everything(job.threads, job.seed)
    model = load(model_path)
    feed = feed_for(model.spec.io, job.encoding)
    splits = make_splits(job.data_name, time_steps=model.spec.time_steps, encoding=feed.encoding, seed=job.seed,
                         test_subset=job.test_subset, input_shape=model.spec.input_shape, max_rate=job.max_rate,
                         normalize=feed.normalize)
    config = TrainConfig(seed=job.seed, threads=job.threads, device=job.device, eval_batch_size=job.batch_size)
    target = pick_device(job.device)
    metrics = evaluate(model.to(target), splits.test, config=config, device=target, progress=job.progress)
    return {"model": model.spec.name, "source": str(model_path), "data": splits.info.name, "feed": feed.note,
            "time_steps": model.spec.time_steps, "readout": model.spec.readout, **metrics}
