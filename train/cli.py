"""``snndeploy train`` and ``snndeploy evaluate``.

``train SPEC --data NAME --epochs N --out DIR`` trains a model spec (or fine-tunes a checkpoint or an
imported netx network) on a local dataset, printing per-epoch loss, accuracy and spike rate and writing
``DIR/checkpoint.pt``, ``DIR/best.pt``, ``DIR/metrics.json``, ``DIR/training.png`` and ``DIR/spec.yaml``;
``--resume`` continues from ``DIR/checkpoint.pt``. Under
``torchrun --nproc-per-node K -m snndeploy.cli train ...`` it trains with DistributedDataParallel.
``evaluate MODEL --data NAME`` reports test accuracy and spike rates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from snndeploy.cli_support import COUNT, FRACTION, POSITIVE, PROBABILITY, emit, json_option
from snndeploy.loader import load_model
from snndeploy.train import distributed
from snndeploy.train.loop import LR_SCHEDULES
from snndeploy.train.run import ENCODINGS, LOSS_CHOICES, EvalJob, TrainJob, run_evaluation, run_training

_data_options = [
    click.option("--data", "data_name", required=True, help="Dataset: mnist, fashion-mnist, nmnist-small, mnist1d, "
                                                           "uci-digits."),
    click.option("--encoding", type=click.Choice(ENCODINGS), default=None,
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
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="constant", show_default=True,
              help="cosine: decay the learning rate from --lr towards 0 over --epochs.")
@click.option("--loss", type=click.Choice(LOSS_CHOICES), default="auto",
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
    job = TrainJob(epochs=epochs, out=out, data_name=data_name, encoding=encoding, max_rate=max_rate,
                   test_subset=test_subset, batch_size=batch_size, seed=seed, threads=threads, device=device,
                   subset=subset, val_fraction=val_fraction, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                   loss=loss, true_rate=true_rate, false_rate=false_rate, resume=resume, force=force, test=not no_test,
                   progress=not as_json)
    distributed.setup()
    try:
        result = run_training(spec, job, load=load_model, log=None if as_json else click.echo)
    finally:
        distributed.teardown()
    if result is not None:
        emit(result, as_json, _human)


@click.command("evaluate")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@data_options
@json_option
def evaluate_command(model_path: Path, data_name: str, encoding: str, max_rate: float, test_subset: int | None,
             batch_size: int, seed: int, threads: int, device: str, as_json: bool) -> None:
    """Test accuracy, loss and spike rates of MODEL (a checkpoint, netx .net or spec) on a dataset's test set."""
    result = run_evaluation(model_path, EvalJob(data_name=data_name, encoding=encoding, max_rate=max_rate,
                                                test_subset=test_subset, batch_size=batch_size, seed=seed,
                                                threads=threads, device=device, progress=not as_json),
                            load=load_model)
    emit(result, as_json, lambda r: (f"{r['feed']}; {r['time_steps']} steps, read-out {r['readout']}\n"
                                     f"{r['model']} on {r['data']} test ({r['samples']} samples): accuracy "
                                     f"{100 * r['accuracy']:.2f}%  loss {r['loss']:.4f}  spike rate "
                                     f"{r['spike_rate']:.4f}\nper-block spike rates: " + ", ".join(
                                         f"{k}: {v:.4f}" for k, v in r["block_spike_rates"].items())))
