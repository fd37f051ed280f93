"""``snndeploy train`` and ``snndeploy evaluate``.

``train SPEC --data NAME --epochs N --out DIR`` trains a model spec (or fine-tunes a checkpoint or an
imported netx network) on a local dataset, printing per-epoch loss, accuracy and spike rate and writing
``DIR/checkpoint.pt``, ``DIR/best.pt``, ``DIR/metrics.json``, ``DIR/training.png`` and ``DIR/spec.yaml``;
``--resume`` continues from ``DIR/checkpoint.pt``. Under
``torchrun --nproc-per-node K -m snndeploy.cli train ...`` it trains with DistributedDataParallel.
``evaluate MODEL --data NAME`` reports test accuracy and spike rates.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from snndeploy.atomic import check_output, set_aside
from snndeploy.cli_support import COUNT, FRACTION, POSITIVE, PROBABILITY, emit, json_option
from snndeploy.data.datasets import dataset_info
from snndeploy.errors import UserError

_data_options = [
    click.option("--data", "data_name", required=True, help="Dataset: mnist, fashion-mnist, nmnist-small, mnist1d, "
                                                           "uci-digits."),
    click.option("--encoding", type=click.Choice(["rate", "current"]), default=None,
                 help="How static images become input over the model's time steps (ignored for event data); "
                      "default: what the model records (netx input layer: current), else rate."),
    click.option("--max-rate", type=PROBABILITY, default=1.0, show_default=True,
                 help="Rate encoding: spike probability per step of a white pixel."),
    click.option("--test-subset", type=COUNT, default=None, help="Use only the first N test samples."),
    click.option("--batch-size", type=COUNT, default=32, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights, splits, encoding, shuffling."),
    click.option("--threads", type=COUNT, default=2, show_default=True, help="torch CPU threads."),
    click.option("--device", default="auto", show_default=True, help="auto (GPU when present), cpu, cuda, cuda:1."),
]


def data_options(fn):
    for option in reversed(_data_options):
        fn = option(fn)
    return fn


def _prepare_threads(threads: int, seed: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


def busy_warning(threads: int) -> str | None:
    """torch's OpenMP threads spin-wait; on an oversubscribed machine 2 threads can be several times slower than 1."""
    import os

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if threads > 1 and load > 1.5 * cores:
        return (f"note: this machine is busy (load {load:.1f} on {cores} cores); --threads 1 is likely faster "
                f"than --threads {threads}")
    return None


def _check_out(out: Path, resume: bool, force: bool) -> None:
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise UserError("--resume: no checkpoint.pt in the output folder", out)
        return
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError("output folder exists and is not empty; pass --resume to continue or --force to replace",
                        out)


def _human(result: dict[str, Any]) -> str:
    test = result.get("test")
    lines = [f"trained {result['model']} on {result['data']} for {result['epochs']} epochs "
             f"({result['seconds_per_epoch']:.1f} s/epoch) -> {result['out']}"]
    if test:
        lines.append(f"test accuracy {100 * test['accuracy']:.2f}%  loss {test['loss']:.4f}  "
                     f"spike rate {test['spike_rate']:.4f}  ({test['samples']} samples)")
    return "\n".join(lines)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--epochs", type=COUNT, required=True, help="Total number of epochs (a resumed run continues up to it).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder for checkpoints and metrics.json.")
@data_options
@click.option("--subset", type=COUNT, default=None, help="Train on N samples (validation gets N/5).")
@click.option("--val-fraction", type=FRACTION, default=0.1, show_default=True,
              help="Share of the training data held out for validation (0: none).")
@click.option("--lr", type=POSITIVE, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="Adam L2 weight decay.")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="cosine: decay the learning rate from --lr towards 0 over --epochs.")
@click.option("--loss", type=click.Choice(["auto", "spike_rate", "spike_max", "cross_entropy"]), default="auto",
              show_default=True, help="SLAYER SpikeRate / SpikeMax, or cross entropy on the mean output; auto: "
                                      "spike_rate, or cross_entropy for an affine (voltage) readout.")
@click.option("--true-rate", type=PROBABILITY, default=0.2, show_default=True, help="SpikeRate target, correct class.")
@click.option("--false-rate", type=PROBABILITY, default=0.03, show_default=True,
              help="SpikeRate target, other classes.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--no-test", is_flag=True, help="Skip the final test-set evaluation.")
@json_option
def train(spec: Path, epochs: int, out: Path, data_name: str, encoding: str, max_rate: float,
          test_subset: int | None, batch_size: int, seed: int, threads: int, device: str, subset: int | None,
          val_fraction: float, lr: float, weight_decay: float, lr_schedule: str, loss: str, true_rate: float,
          false_rate: float, resume: bool, force: bool, no_test: bool, as_json: bool) -> None:
    """Train SPEC (a model spec YAML, a checkpoint or a netx .net) on a local dataset."""
    from snndeploy.train import distributed

    distributed.setup()
    try:
        result = run_training(spec, epochs=epochs, out=out, data_name=data_name, encoding=encoding,
                              max_rate=max_rate, test_subset=test_subset, batch_size=batch_size, seed=seed,
                              threads=threads, device=device, subset=subset, val_fraction=val_fraction, lr=lr,
                              weight_decay=weight_decay, lr_schedule=lr_schedule, loss=loss, true_rate=true_rate,
                              false_rate=false_rate, resume=resume, force=force,
                              test=not no_test, progress=not as_json, log=None if as_json else click.echo)
    finally:
        distributed.teardown()
    if result is not None:
        emit(result, as_json, _human)


def run_training(spec: Path, *, epochs: int, out: Path, data_name: str, encoding: str | None = None,
                 max_rate: float = 1.0, test_subset: int | None = None, batch_size: int = 32, seed: int = 0,
                 threads: int = 2, device: str = "auto", subset: int | None = None, val_fraction: float = 0.1,
                 lr: float = 1e-3, weight_decay: float = 0.0, lr_schedule: str = "constant", loss: str = "auto",
                 true_rate: float = 0.2, false_rate: float = 0.03,
                 resume: bool = False, force: bool = False, test: bool = True, progress: bool = True,
                 log=print, callbacks=()) -> dict[str, Any] | None:
    """The ``train`` command as a function (returns the summary on rank 0, None on other DDP ranks)."""
    from snndeploy.data.datasets import feed_for, make_splits
    from snndeploy.models.load import load_model
    from snndeploy.train import distributed
    from snndeploy.train.loop import TrainConfig

    out = Path(out)
    dataset_info(data_name)  # an unknown name is refused before anything is printed or written
    if distributed.is_main():
        check_output(out, force=True, folder=True)
        _check_out(out, resume, force)
    _prepare_threads(threads, seed)
    model = load_model(spec)
    net_spec = model.spec
    if loss == "auto":
        loss = "cross_entropy" if net_spec.blocks[-1].kind == "affine" else "spike_rate"
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         lr_schedule=lr_schedule, loss=loss,
                         true_rate=true_rate, false_rate=false_rate, seed=seed, threads=threads, device=device)
    feed = feed_for(net_spec.io, encoding)
    # the checkpoint records how the model was fed and is read, for every later command
    net_spec = replace(net_spec, io=replace(net_spec.io, encoding=feed.encoding, readout=net_spec.readout,
                                            source=net_spec.io.source or f"trained on {data_name}"))
    model.spec = net_spec
    splits = make_splits(data_name, time_steps=net_spec.time_steps, encoding=feed.encoding, seed=seed,
                         val_fraction=val_fraction, subset=subset, test_subset=test_subset,
                         input_shape=net_spec.input_shape, max_rate=max_rate, normalize=feed.normalize)
    if splits.info.num_classes > net_spec.num_outputs:
        raise UserError(f"{net_spec.name} has {net_spec.num_outputs} outputs but {splits.info.name} has "
                        f"{splits.info.num_classes} classes", spec)
    warning = busy_warning(threads)
    if warning and log and distributed.is_main():
        log(warning)
    # --force: the old run's files are put back if this one fails; deleted only once it has finished
    with set_aside(out) if force and not resume and distributed.is_main() else contextlib.nullcontext():
        return _train(model, spec, out, config, splits, net_spec, resume=resume, test=test, threads=threads,
                      seed=seed, feed=feed, subset=subset, val_fraction=val_fraction, callbacks=callbacks,
                      log=log, progress=progress)


def _train(model, spec: Path, out: Path, config, splits, net_spec, *, resume: bool, test: bool, threads: int,
           seed: int, feed, subset: int | None, val_fraction: float, callbacks, log, progress: bool):
    from snndeploy.models.spec import save_spec
    from snndeploy.train import distributed
    from snndeploy.train.loop import CHECKPOINT, Trainer, evaluate, write_metrics

    # Each rank draws different encodings/dropout; DDP broadcasts rank 0's initial weights.
    _prepare_threads(threads, seed + distributed.rank())
    trainer = Trainer(model, config, callbacks=callbacks, log=log, progress=progress)
    if resume:
        trainer.resume(out / CHECKPOINT)
    elif distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_spec(net_spec, out / "spec.yaml")
    distributed.barrier()
    start = time.perf_counter()
    history = trainer.fit(splits.train, splits.val, out_dir=out)
    elapsed = time.perf_counter() - start
    test_metrics = evaluate(trainer.model, splits.test, config=config, device=trainer.device) if test else None
    if not distributed.is_main():
        return None
    run = {"data": splits.info.name, "encoding": feed.encoding, "feed": feed.note, "subset": subset,
           "val_fraction": val_fraction, "train_samples": len(splits.train), "val_samples": len(splits.val),
           "test_samples": len(splits.test), "source": str(spec)}
    write_metrics(out, trainer, {"run": run, "test": test_metrics})
    from snndeploy.train.plot import plot_history

    plot_history(trainer.history, out / "training.png", f"{net_spec.name} on {splits.info.name}")
    epoch_seconds = [m["seconds"] for m in history] or [0.0]
    return {"model": net_spec.name, "data": splits.info.name, "out": str(out), "epochs": trainer.epoch,
            "seconds": round(elapsed, 3), "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
            "last_epoch": history[-1] if history else None, "test": test_metrics,
            "checkpoint": str(out / CHECKPOINT), "world_size": distributed.world_size()}


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@data_options
@json_option
def evaluate(model_path: Path, data_name: str, encoding: str, max_rate: float, test_subset: int | None,
             batch_size: int, seed: int, threads: int, device: str, as_json: bool) -> None:
    """Test accuracy, loss and spike rates of MODEL (a checkpoint, netx .net or spec) on a dataset's test set."""
    result = run_evaluation(model_path, data_name=data_name, encoding=encoding, max_rate=max_rate,
                            test_subset=test_subset, batch_size=batch_size, seed=seed, threads=threads,
                            device=device, progress=not as_json)
    emit(result, as_json, lambda r: (f"{r['feed']}; {r['time_steps']} steps, read-out {r['readout']}\n"
                                     f"{r['model']} on {r['data']} test ({r['samples']} samples): accuracy "
                                     f"{100 * r['accuracy']:.2f}%  loss {r['loss']:.4f}  spike rate "
                                     f"{r['spike_rate']:.4f}\nper-block spike rates: " + ", ".join(
                                         f"{k}: {v:.4f}" for k, v in r["block_spike_rates"].items())))


def run_evaluation(model_path: Path, *, data_name: str, encoding: str | None = None, max_rate: float = 1.0,
                   test_subset: int | None = None, batch_size: int = 128, seed: int = 0, threads: int = 2,
                   device: str = "auto", progress: bool = False) -> dict[str, Any]:
    from snndeploy.data.datasets import feed_for, make_splits
    from snndeploy.models.load import load_model
    from snndeploy.train.loop import TrainConfig, pick_device
    from snndeploy.train.loop import evaluate as evaluate_model

    dataset_info(data_name)
    _prepare_threads(threads, seed)
    model = load_model(model_path)
    feed = feed_for(model.spec.io, encoding)
    splits = make_splits(data_name, time_steps=model.spec.time_steps, encoding=feed.encoding, seed=seed,
                         test_subset=test_subset, input_shape=model.spec.input_shape, max_rate=max_rate,
                         normalize=feed.normalize)
    config = TrainConfig(seed=seed, threads=threads, device=device, eval_batch_size=batch_size)
    target = pick_device(device)
    metrics = evaluate_model(model.to(target), splits.test, config=config, device=target, progress=progress)
    return {"model": model.spec.name, "source": str(model_path), "data": splits.info.name, "feed": feed.note,
            "time_steps": model.spec.time_steps, "readout": model.spec.readout, **metrics}
