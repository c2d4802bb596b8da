"""torch.distributed for the pipeline: who this process is, and the few collectives the tasks need.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the pipeline joins the process group, or
starts it: gloo on the CPU, nccl on CUDA, one device per process (``cuda:LOCAL_RANK``). A single process
gets ``DistributedContext.single()``, whose collectives are no-ops, so the tasks run one code path.

What is per rank and what is shared (README "Several GPUs and machines"):

- every rank holds the whole training set and draws its batches from its own shard (the indices of a
  ``DistributedSampler``); ``batch_size`` is per rank, so the global batch is ``world_size * batch_size``;
- latents and batches come from per-rank random streams, seeded from ``(seed, task, rank)``;
- gradients of the trained networks are averaged across ranks by DDP; logged metrics are averaged;
- rank 0 alone writes checkpoints, metrics and figures; a checkpoint holds every rank's random streams,
  so a resumed run continues exactly, with the same number of processes.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from omasgan.errors import InvalidInputError

__all__ = ["DistributedContext", "launched_by_torchrun", "session"]

logger = logging.getLogger("omasgan")


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun (or any launcher that sets ``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the group. ``world_size == 1`` means no process group is used."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def single(cls) -> DistributedContext:
        return cls()

    @classmethod
    def start(cls, device: torch.device, *, timeout_s: float | None = None) -> DistributedContext:
        """Join (or first create) the default process group described by torchrun's environment.

        ``device`` chooses the backend: nccl for CUDA, gloo otherwise. An existing group (initialised by
        the caller) is used as it is.
        """
        if not dist.is_available():
            raise InvalidInputError("this torch build has no torch.distributed; train in a single process.")
        if not dist.is_initialized():
            missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
            if missing:
                raise InvalidInputError(
                    f"distributed training needs torchrun's environment ({', '.join(missing)} missing); launch "
                    "with `torchrun --nproc_per_node N -m omasgan fit ...`."
                )
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(device)
            timeout = timeout_s if timeout_s is not None else float(os.environ.get("OMASGAN_DIST_TIMEOUT", "1800"))
            kwargs: dict[str, Any] = {"backend": backend, "timeout": datetime.timedelta(seconds=timeout)}
            if device.type == "cuda":
                kwargs["device_id"] = device
            dist.init_process_group(**kwargs)
        local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, n: int, seed: int) -> torch.Tensor:
        """This rank's indices of n samples: a seeded ``DistributedSampler`` split (equal sizes, padded)."""
        sampler = DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)
        return torch.tensor(list(sampler), dtype=torch.long)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average of ``values`` over the ranks (every rank gets it)."""
        if not self.active:
            return values
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world_size

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Overwrite ``tensor`` in place with rank 0's (e.g. state a rank initialised from its own data)."""
        if self.active:
            dist.broadcast(tensor, src=0)
        return tensor

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (picklable objects)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


@contextlib.contextmanager
def session(device: torch.device, *, distributed: bool | None = None) -> Iterator[DistributedContext]:
    """The process group for one command: started on entry when asked for (or launched by torchrun),
    destroyed on exit, also when this rank fails, so that no rank is left holding the group.

    If a rank raises, its error is logged with its rank and re-raised; torchrun then stops the other ranks.
    """
    use = launched_by_torchrun() if distributed is None else distributed
    if not use:
        yield DistributedContext.single()
        return
    owns_group = not (dist.is_available() and dist.is_initialized())
    context = DistributedContext.start(device)
    try:
        yield context
    except BaseException as exc:
        logger.error("rank %d of %d failed: %s: %s", context.rank, context.world_size, type(exc).__name__, exc)
        raise
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def rank_device(device: torch.device, context: DistributedContext) -> torch.device:
    """One GPU per process: ``cuda`` becomes ``cuda:LOCAL_RANK``; other devices are unchanged."""
    if device.type == "cuda" and device.index is None and context.active:
        return torch.device("cuda", context.local_rank)
    return device
