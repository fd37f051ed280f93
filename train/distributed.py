"""DistributedDataParallel under ``torchrun``: process group, model wrapping, samplers, metric reduction.

Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) every helper is a no-op, so the training
loop is written once. The backend is NCCL on GPUs and gloo on CPUs (``SNNDEPLOY_DDP_BACKEND`` overrides).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def requested() -> bool:
    """True when started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def setup() -> None:
    """Join the process group torchrun describes (idempotent; no-op for a single process)."""
    if not requested() or active():
        return
    backend = os.environ.get("SNNDEPLOY_DDP_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)


def teardown() -> None:
    if active():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP-wrap ``model`` when a process group is up; SLAYER's per-batch neuron state buffers stay local."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def sampler(dataset, *, shuffle: bool, seed: int, epoch: int):
    """A DistributedSampler (a different shard per rank, reshuffled per epoch), or None without DDP."""
    if not active():
        return None
    from torch.utils.data.distributed import DistributedSampler

    s = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=False)
    s.set_epoch(epoch)
    return s


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if not active():
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else values.device
    reduced = values.to(device)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(values.device)
