"""The SLAYER training loop shared by ``snndeploy train`` and the pruning stage.

``Trainer(model, TrainConfig(...), callbacks=[...]).fit(train_set, val_set, out_dir=...)`` trains with a
lava-dl loss (``slayer.loss.SpikeRate`` by default), evaluates after every epoch and writes
``checkpoint.pt`` (latest), ``best.pt`` (best validation accuracy) and ``metrics.json`` into ``out_dir``.
``evaluate(model, dataset)`` returns accuracy, loss, mean spike rate and per-block spike rates.

How a pruning method plugs in: subclass :class:`Callback` and pass it in ``callbacks``. The trainer calls

* ``on_train_start(trainer)``: e.g. compute initial masks from ``trainer.model`` (a SlayerNet; under DDP
  ``trainer.net`` is the unwrapped one);
* ``after_backward(trainer, step)``: gradients exist, the optimizer has not stepped: mask or score gradients;
* ``after_step(trainer, step)``: weights were updated: re-apply masks so pruned weights stay zero;
* ``on_epoch_end(trainer, epoch, metrics)``: after validation, before the checkpoint: prune more, regrow,
  change the schedule; add keys to ``metrics`` (saved in metrics.json); replace the optimizer via
  ``trainer.optimizer`` if parameters changed (a structured shrink replaces ``trainer.net`` via
  :meth:`Trainer.replace_model`);
* ``on_train_end(trainer)``.

Setting ``trainer.stop = True`` ends training after the current epoch. ``trainer.last_outputs`` holds the
per-block outputs of the latest training batch (activity-based criteria read them in ``after_backward``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from snndeploy.atomic import write_json
from snndeploy.errors import UserError
from snndeploy.models.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint, set_rng_state
from snndeploy.models.spec import spec_from_dict, spec_to_dict
from snndeploy.train import distributed

LOSSES = ("spike_rate", "spike_max", "cross_entropy")
LR_SCHEDULES = ("constant", "cosine")
CHECKPOINT, BEST, METRICS = "checkpoint.pt", "best.pt", "metrics.json"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant, or cosine: decay from lr towards 0 over the epochs
    weight_decay: float = 0.0
    loss: str = "spike_rate"  # spike_rate (SLAYER SpikeRate), spike_max (SLAYER SpikeMax), cross_entropy
    true_rate: float = 0.2  # SpikeRate target of the correct class
    false_rate: float = 0.03  # SpikeRate target of the other classes
    seed: int = 0
    threads: int = 2  # torch CPU threads
    device: str = "auto"  # auto: the GPU when one is present
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; available: {', '.join(LOSSES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown learning-rate schedule {self.lr_schedule!r}; "
                            f"available: {', '.join(LR_SCHEDULES)}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.threads < 1 or self.weight_decay < 0:
            raise UserError("epochs must be >= 0, batch size and threads >= 1, learning rate > 0, weight decay >= 0")
        if not (0 <= self.false_rate <= 1 and 0 <= self.true_rate <= 1):
            raise UserError("true_rate and false_rate must be within [0, 1]")


class Callback:
    """Hooks into the training loop (see the module docstring); every method is optional."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def after_backward(self, trainer: Trainer, step: int) -> None: ...

    def after_step(self, trainer: Trainer, step: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


def make_loss(config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    from lava.lib.dl import slayer

    if config.loss == "spike_rate":
        return slayer.loss.SpikeRate(true_rate=config.true_rate, false_rate=config.false_rate, reduction="sum")
    if config.loss == "spike_max":
        return slayer.loss.SpikeMax(mode="logsoftmax", reduction="sum")

    def cross_entropy(output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logits = output.reshape(output.shape[0], -1, output.shape[-1]).mean(-1)
        return torch.nn.functional.cross_entropy(logits, label, reduction="sum")

    return cross_entropy


def cosine_decay(done: float, total: float) -> float:
    """A cosine from 1 (``done`` 0) to 0 (``done`` >= ``total``). Callers scale it by a factor (``a * cosine_decay``):
    halving is exact, so that equals ``0.5 a (1 + cos)`` to the last bit."""
    return 0.5 * (1 + math.cos(math.pi * min(done, total) / total))


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Scale of the initial learning rate in the epoch with 0-based index ``epoch`` (resume needs no state)."""
    if config.lr_schedule == "cosine" and config.epochs > 0:
        return cosine_decay(epoch, config.epochs)
    return 1.0


def predict(output: torch.Tensor) -> torch.Tensor:
    """Class with the highest mean output over time (spike rate, or mean voltage of an affine readout)."""
    return output.reshape(output.shape[0], -1, output.shape[-1]).mean(-1).argmax(1)


def spiking_blocks(net) -> list[int]:
    """Indices of blocks whose output is spikes (not flatten, not an affine readout)."""
    return [i for i, b in enumerate(net.spec.blocks) if b.kind not in ("flatten", "affine")]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no GPU is visible")
    return device


class _Tally:
    """Sums over batches: loss, correct, count, and spike counts per spiking block."""

    def __init__(self, blocks: list[int]):
        self.blocks = blocks
        self.loss = self.correct = self.count = 0.0
        self.spikes = torch.zeros(len(blocks), dtype=torch.float64)
        self.slots = torch.zeros(len(blocks), dtype=torch.float64)

    def add(self, loss: torch.Tensor, output: torch.Tensor, outputs: list[torch.Tensor], label: torch.Tensor) -> None:
        self.loss += float(loss.detach())
        self.correct += float((predict(output.detach()) == label).sum())
        self.count += len(label)
        for j, i in enumerate(self.blocks):
            out = outputs[i].detach()
            self.spikes[j] += float((out != 0).sum())
            self.slots[j] += out.numel()

    def reduce(self) -> None:
        """Sum over DDP ranks (no-op without DDP)."""
        values = torch.cat([torch.tensor([self.loss, self.correct, self.count], dtype=torch.float64),
                            self.spikes, self.slots])
        values = distributed.all_reduce_sum(values)
        self.loss, self.correct, self.count = (float(v) for v in values[:3])
        n = len(self.blocks)
        self.spikes, self.slots = values[3:3 + n], values[3 + n:]

    def metrics(self) -> dict[str, Any]:
        count = max(self.count, 1.0)
        rates = (self.spikes / self.slots.clamp(min=1)).tolist()
        total = float(self.spikes.sum() / self.slots.sum().clamp(min=1))
        return {"loss": self.loss / count, "accuracy": self.correct / count, "samples": int(self.count),
                "spike_rate": total, "block_spike_rates": {str(i): r for i, r in zip(self.blocks, rates, strict=True)}}


def _loader(dataset, batch_size: int, *, shuffle: bool, seed: int, epoch: int = 0) -> torch.utils.data.DataLoader:
    sampler = distributed.sampler(dataset, shuffle=shuffle, seed=seed, epoch=epoch)
    generator = torch.Generator().manual_seed(seed * 100003 + epoch) if shuffle and sampler is None else None
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                                       sampler=sampler, generator=generator, num_workers=0)


@torch.no_grad()
def evaluate(model, dataset, *, config: TrainConfig | None = None, device: torch.device | str | None = None,
             loss_fn: Callable | None = None, progress: bool = False) -> dict[str, Any]:
    """Accuracy, mean loss per sample, mean spike rate and per-block spike rates of ``model`` on ``dataset``."""
    from tqdm import tqdm

    config = config or TrainConfig()
    net = getattr(model, "module", model)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    loss_fn = loss_fn or make_loss(config)
    was_training = net.training
    net.eval()
    tally = _Tally(spiking_blocks(net))
    loader = _loader(dataset, config.eval_batch_size, shuffle=False, seed=config.seed)
    for x, label in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        x, label = x.to(device), label.to(device)
        output, outputs = net(x, return_all=True)
        tally.add(loss_fn(output, label), output, outputs, label)
    tally.reduce()
    net.train(was_training)
    return tally.metrics()


class Trainer:
    """Trains a SlayerNet; see the module docstring for callbacks, outputs and resume."""

    def __init__(self, model, config: TrainConfig, *, callbacks: Sequence[Callback] = (),
                 optimizer: torch.optim.Optimizer | None = None, log: Callable[[str], None] | None = print,
                 progress: bool = True, objective: Callable[..., torch.Tensor] | None = None):
        self.config = config
        self.device = pick_device(config.device)
        self.net = model.to(self.device)
        self.model = distributed.wrap(self.net, self.device)
        self.optimizer = optimizer or self._default_optimizer()
        self.loss_fn = make_loss(config)
        self.objective = objective  # objective(output, label, x): replaces loss_fn in training (e.g. distillation)
        self.callbacks = list(callbacks)
        self.log = log if distributed.is_main() else None
        self.progress = progress and distributed.is_main()
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.step = 0
        self.stop = False
        self.last_outputs: list[torch.Tensor] = []

    def _default_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def replace_model(self, model, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Swap in a new network (e.g. after a structured shrink) and a fresh optimizer for it."""
        self.net = model.to(self.device)
        self.model = distributed.wrap(self.net, self.device)
        self.optimizer = optimizer or self._default_optimizer()

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def train_epoch(self, dataset) -> dict[str, Any]:
        """One pass over ``dataset``; returns the training metrics of the epoch."""
        from tqdm import tqdm

        self.model.train()
        if self.config.lr_schedule != "constant":  # a constant rate leaves a caller's own optimizer untouched
            for group in self.optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * lr_factor(self.config, self.epoch)
        tally = _Tally(spiking_blocks(self.net))
        loader = _loader(dataset, self.config.batch_size, shuffle=True, seed=self.config.seed, epoch=self.epoch)
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", leave=False,
                   disable=not self.progress, unit="batch")
        for x, label in bar:
            x, label = x.to(self.device), label.to(self.device)
            output, outputs = self.model(x, return_all=True)
            loss = self.objective(output, label, x) if self.objective else self.loss_fn(output, label)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.last_outputs = outputs
            self._call("after_backward", self.step)
            self.optimizer.step()
            self._call("after_step", self.step)
            self.step += 1
            tally.add(loss, output, outputs, label)
            bar.set_postfix(loss=f"{tally.loss / tally.count:.4f}", acc=f"{tally.correct / tally.count:.3f}")
        self.last_outputs = []
        tally.reduce()
        return tally.metrics()

    def fit(self, train_set, val_set=None, *, out_dir: str | Path | None = None) -> list[dict[str, Any]]:
        """Train up to ``config.epochs`` epochs in total (continuing after a resume)."""
        out = Path(out_dir) if out_dir is not None else None
        self._call("on_train_start")
        best = max((m.get("val_accuracy", -1.0) for m in self.history), default=-1.0)
        while self.epoch < self.config.epochs and not self.stop:
            start = time.perf_counter()
            train = self.train_epoch(train_set)
            seconds = time.perf_counter() - start
            metrics = {"epoch": self.epoch + 1, "seconds": round(seconds, 3),
                       "lr": self.optimizer.param_groups[0]["lr"], **{f"train_{k}": v for k, v in train.items()}}
            if val_set is not None and len(val_set):
                val = evaluate(self.model, val_set, config=self.config, device=self.device, loss_fn=self.loss_fn)
                metrics.update({f"val_{k}": v for k, v in val.items()})
            self.epoch += 1
            self._call("on_epoch_end", self.epoch, metrics)
            self.history.append(metrics)
            if self.log:
                self.log(format_epoch(metrics, self.config.epochs))
            if out is not None and distributed.is_main():
                checkpoint = make_checkpoint(self.net, optimizer=self.optimizer, epoch=self.epoch,
                                             metrics=self.history, extra={"config": dataclasses.asdict(self.config),
                                                    "step": self.step})
                save_checkpoint(out / CHECKPOINT, checkpoint)
                accuracy = metrics.get("val_accuracy", metrics["train_accuracy"])
                if accuracy > best:
                    best = accuracy
                    save_checkpoint(out / BEST, checkpoint)
                write_metrics(out, self)
            distributed.barrier()
        self._call("on_train_end")
        return self.history

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint: weights, optimizer, completed epochs, metrics and RNG state."""
        checkpoint = load_checkpoint(path)

        if spec_from_dict(checkpoint["spec"]) != self.net.spec:
            raise UserError("the checkpoint was trained from a different model spec", path)
        self.net.load_state_dict(checkpoint["state_dict"])
        if checkpoint.get("optimizer"):
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.epoch = int(checkpoint["epoch"])
        self.history = list(checkpoint.get("metrics", []))
        if "rng" in checkpoint:
            set_rng_state(checkpoint["rng"])
        self.step = int(checkpoint.get("extra", {}).get("step", 0))


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    text = (f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}  acc {100 * m['train_accuracy']:.2f}%  "
            f"spike rate {m['train_spike_rate']:.4f}")
    if "val_accuracy" in m:
        text += f"  | val loss {m['val_loss']:.4f}  acc {100 * m['val_accuracy']:.2f}%"
    return text + f"  ({m['seconds']:.1f} s)"


def write_metrics(out: Path, trainer: Trainer, extra: dict[str, Any] | None = None) -> Path:
    data = {"spec": spec_to_dict(trainer.net.spec), "config": dataclasses.asdict(trainer.config),
            "device": str(trainer.device), "world_size": distributed.world_size(), "epochs": trainer.history}
    previous = out / METRICS
    if previous.is_file():
        try:
            old = json.loads(previous.read_text())
            data = {**{k: v for k, v in old.items() if k not in data}, **data}
        except (OSError, json.JSONDecodeError):
            pass
    return write_json(previous, {**data, **(extra or {})})
