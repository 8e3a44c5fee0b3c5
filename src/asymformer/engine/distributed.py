"""torchrun / DDP plumbing: process group set-up, device choice, sharded sampling.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything runs as one process.
The backend is nccl on CUDA and gloo on CPU. Sampling is our own: a permutation drawn from
(seed, epoch) that every rank computes identically, so data order is a pure function of the
epoch, and a resumed run can skip the batches it had already consumed.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from asymformer import devices
from asymformer.deprecation import notice


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def bind_device(name: str = "auto") -> torch.device:
    """This process's device, made current: devices.resolve_device (the one parser of `--device`)
    with a bare 'cuda' / 'auto' meaning cuda:LOCAL_RANK under torchrun, then torch.cuda.set_device
    so that NCCL and every default-device allocation of this rank use its own GPU."""
    device = devices.resolve_device(name, default_index=int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device) -> bool:
    """Join the torchrun process group if launched by torchrun; returns True when we created it."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return True


def cleanup(created: bool) -> None:
    if created and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics).

    Without SyncBN (CPU / gloo) each rank's running statistics follow its own half of the batch
    after the last step (DDP only broadcasts buffers at the start of a forward), so a sharded
    validation would score part of the images with statistics that no saved checkpoint holds.
    """
    if world_size() > 1:
        for buf in model.buffers():
            dist.broadcast(buf, 0)


class ShardedSampler(Sampler):
    """Indices of one rank for one epoch: a (seed, epoch) permutation padded to equal shards.

    `start` skips that many of this rank's samples (a mid-epoch resume); `shuffle=False` plus
    `pad=False` gives disjoint, complete shards for exact distributed evaluation.
    """

    def __init__(self, size: int, rank: int = 0, world: int = 1, seed: int = 0, epoch: int = 0,
                 shuffle: bool = True, pad: bool = True, start: int = 0):
        if size <= 0:
            raise ValueError("the dataset is empty: check the split files of --data")
        order = (np.random.default_rng((seed, epoch)).permutation(size) if shuffle
                 else np.arange(size))
        if pad:
            total = -(-size // world) * world
            order = np.concatenate([order, order[: total - size]]) if total > size else order
        self.indices = order[rank::world].tolist()[start:]

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


def resolve_device(name: str = "auto") -> torch.device:
    """0.1's name of `bind_device` (deprecated, removed in 0.3)."""
    warnings.warn(notice("engine.distributed.resolve_device", "bind_device"), DeprecationWarning, stacklevel=2)
    return bind_device(name)
