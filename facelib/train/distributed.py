"""Data-parallel training with ``torchrun``: process group, devices, and wrapping with DDP.

``torchrun --nproc_per_node=N -m facelib train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environments.
:func:`init_distributed` reads them and joins the process group: NCCL on CUDA (one GPU per local
rank), gloo on the CPU. Without those variables it is a single process (``world_size`` 1, no
process group), so the same trainer code runs both ways.

What each rank does (see :mod:`facelib.train.trainer`): it renders or reads its own shard of every
step's items (a pure function of the seed, the step and the rank), computes its losses, and
DistributedDataParallel averages the gradients of the GCN and, separately, of the critic before
each optimiser step, so the weights stay identical on every rank. Only rank 0 writes logs and
checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a data-parallel run.

    Attributes:
        rank: this process's index in [0, world_size).
        world_size: the number of processes (1: not distributed).
        local_rank: the index on this machine (picks the GPU).
        device: where this process computes.
        backend: "nccl", "gloo", or None when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment holds torchrun's variables (``WORLD_SIZE`` and ``RANK``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """Joins the process group when launched by torchrun; otherwise describes a single process.

    Args:
        device: "cpu", "cuda" (each rank takes ``cuda:LOCAL_RANK``) or None (CUDA when available).

    Raises:
        RuntimeError: asked for CUDA where there is none, or more ranks on this machine than GPUs.
    """
    want = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available here")
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(device=want)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if want.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"local rank {local} has no GPU: this machine has {torch.cuda.device_count()} "
                               "(run torchrun with --nproc_per_node at most that)")
        want = torch.device("cuda", local)
        torch.cuda.set_device(want)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistContext(rank, world, local, want, backend)


def wrap(module: nn.Module, context: DistContext) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when distributed, else ``module`` itself.

    Buffers are not broadcast: facelib's only buffers are the mesh hierarchy's sparse operators,
    which every rank builds identically from the same cached hierarchy (and which collectives
    cannot broadcast: they are sparse CSR tensors). The parameters are broadcast from rank 0 when
    wrapping, so every rank starts from rank 0's weights.
    """
    if not context.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    buffers = [name for name, _ in module.named_buffers()]
    # Keeps the CSR buffers out of DDP's start-up synchronisation (which would try to broadcast them).
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, buffers)
    ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP (or ``torch.compile``) wrapper."""
    while True:
        if hasattr(module, "module") and isinstance(module.module, nn.Module):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def all_reduce_mean(values: dict[str, float], context: DistContext) -> dict[str, float]:
    """The mean of each value over the ranks (for logging: rank 0 reports the whole batch's losses)."""
    if not context.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                          device=context.device if context.backend == "nccl" else "cpu")
    dist.all_reduce(tensor)
    return {k: float(v) / context.world_size for k, v in zip(keys, tensor.tolist())}


def barrier(context: DistContext) -> None:
    if context.distributed:
        dist.barrier()


def shutdown(context: DistContext) -> None:
    """Leaves the process group (a no-op for a single process)."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
