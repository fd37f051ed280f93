"""Fine-tuning and evaluation for pruning, through snndeploy.train's loop (callbacks keep the masks in place)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch import nn

from snndeploy.data.datasets import feed_for, make_splits
from snndeploy.prune.distill import Objective
from snndeploy.train import distributed
from snndeploy.train.loop import Callback, TrainConfig, Trainer, cosine_decay, evaluate, make_loss


class Backend(Protocol):
    """What the runner needs from data and training (:class:`DatasetTrainer` implements it)."""

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def train_epochs(self, net: nn.Module, optimizer: torch.optim.Optimizer, epochs: float,
                     after_step: Callable[[], None], seed_offset: int = 0, anneal: bool = False,
                     start: float = 0.0) -> int: ...

    def evaluate(self, net: nn.Module) -> dict: ...

    def accumulate_gradients(self, net: nn.Module, batches: int) -> None: ...


class _AfterStep(Callback):
    def __init__(self, fn: Callable[[], None]):
        self.fn = fn
        self.steps = 0

    def after_step(self, trainer: Trainer, step: int) -> None:
        self.fn()
        self.steps += 1


class _Anneal(Callback):
    """Every group's rate from its value now to 0 along a cosine over ``total`` optimizer steps; restored at the end
    (the optimizer carries on, or is saved, at the rates the run chose)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total: int):
        self.optimizer = optimizer
        self.total = max(1, total)
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.done = 0

    def after_step(self, trainer: Trainer, step: int) -> None:
        self.done += 1
        factor = cosine_decay(self.done, self.total)
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = base * factor

    def restore(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = base


class DatasetTrainer:
    """A dataset from snndeploy.data, fine-tuned and evaluated with snndeploy.train."""

    def __init__(self, dataset: str, net: nn.Module, *, batch_size: int = 64, subset: int | None = None,
                 test_subset: int | None = None, seed: int = 0, progress: bool = True, lr: float = 1e-3,
                 loss: str = "spike_rate", threads: int = 2, objective: Objective | None = None):
        spec = net.spec
        self.feed = feed_for(spec.io)  # as the model records it was fed (rate where it records nothing)
        self.splits = make_splits(dataset, time_steps=spec.time_steps, seed=seed, subset=subset,
                                  test_subset=test_subset, input_shape=tuple(spec.input_shape),
                                  encoding=self.feed.encoding, normalize=self.feed.normalize)
        self.config = TrainConfig(epochs=1, batch_size=batch_size, lr=lr, seed=seed, loss=loss, threads=threads,
                                  device="cpu")
        self.progress = progress
        # every method trains through this objective (distillation + label loss, snndeploy.prune.distill);
        # None: the plain training loss of ``loss``
        self.objective = objective
        self._train_iter: Iterator | None = None

    def _loader(self, dataset, shuffle: bool, seed: int = 0) -> torch.utils.data.DataLoader:
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return torch.utils.data.DataLoader(dataset, batch_size=self.config.batch_size, shuffle=shuffle,
                                           generator=generator, num_workers=0)

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled training batches (calibration for criticality and gradient scores)."""
        seed = self.config.seed * 7919 + 17
        stream = itertools.chain.from_iterable(self._loader(self.splits.train, True, seed + k)
                                               for k in itertools.count())
        world = distributed.world_size()  # under DDP every rank takes its own batches of the same stream
        return itertools.islice(stream, distributed.rank(), None, world) if world > 1 else stream

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self._loader(self.splits.test, False))

    def steps_per_epoch(self, samples: int | None = None) -> int:
        """Optimizer steps in one pass over ``samples`` (default: the training set) on this rank (a distributed
        sampler pads every rank to the same share)."""
        share = math.ceil((len(self.splits.train) if samples is None else samples) / distributed.world_size())
        return math.ceil(share / self.config.batch_size)

    def window(self, start: float, epochs: float) -> list[int]:
        """Training-set indices of epochs ``[start, start + epochs)`` of one run-long sequence of seeded shuffled
        passes: rounds of a fraction of an epoch each see the next samples, so that rounds summing to one epoch see
        every sample once."""
        size = len(self.splits.train)
        first, last = round(start * size), round((start + epochs) * size)
        indices: list[int] = []
        for lap in range(first // size, math.ceil(last / size)):
            generator = torch.Generator().manual_seed(self.config.seed * 1009 + 500_000 + lap)
            order = torch.randperm(size, generator=generator)
            indices += order[max(first - lap * size, 0):min(last - lap * size, size)].tolist()
        return indices

    def train_epochs(self, net: nn.Module, optimizer: torch.optim.Optimizer, epochs: float,
                     after_step: Callable[[], None], seed_offset: int = 0, anneal: bool = False,
                     start: float = 0.0) -> int:
        """Train ``epochs`` epochs with snndeploy.train; returns the steps. Whole epochs from a whole ``start`` are
        full passes shuffled by ``seed_offset``; otherwise the samples of :meth:`window` (a round of a fraction of
        an epoch). ``anneal``: the rates fall to 0 along a cosine over these epochs (and are restored afterwards)."""
        whole = float(epochs).is_integer() and float(start).is_integer()
        data = self.splits.train if whole else torch.utils.data.Subset(self.splits.train, self.window(start, epochs))
        passes = int(epochs) if whole else 1
        if passes == 0 or len(data) == 0:
            return 0
        hook = _AfterStep(after_step)
        callbacks: list[Callback] = [hook]
        annealing = _Anneal(optimizer, passes * self.steps_per_epoch(len(data))) if anneal else None
        if annealing is not None:
            callbacks.append(annealing)
        config = dataclasses.replace(self.config, epochs=passes, seed=self.config.seed * 1009 + seed_offset)
        trainer = Trainer(net, config, callbacks=callbacks, optimizer=optimizer, log=None, progress=self.progress,
                          objective=self.objective)
        try:
            trainer.fit(data)
        finally:
            if annealing is not None:
                annealing.restore()
        return hook.steps

    def evaluate(self, net: nn.Module) -> dict:
        return evaluate(net, self.splits.test, config=self.config, device="cpu", progress=self.progress)

    def accumulate_gradients(self, net: nn.Module, batches: int) -> None:
        loss_fn = make_loss(self.config)
        net.train()
        for x, y in itertools.islice(self.train_batches(), batches):
            output = net(x)
            (self.objective(output, y, x) if self.objective else loss_fn(output, y)).backward()
