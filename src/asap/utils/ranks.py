"""Per-rank state under DDP: gather one object from every rank, and pick this rank's entry back out.

The checkpoint hooks of `asap.callbacks.rng_state` (generator states) and `asap.data.datamodule` (where the
train loader stands) both save one entry per rank, since under DDP each rank draws from its own generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import lightning as L


def gather_from_ranks(trainer: L.Trainer, obj: Any) -> list[Any]:
    """`obj` of every rank, in rank order ([obj] on one process). Every rank must call it (checkpoint hooks do)."""
    if (
        trainer.world_size <= 1
        or not torch.distributed.is_available()
        or not torch.distributed.is_initialized()
    ):
        return [obj]
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def own_rank(trainer: L.Trainer, per_rank: list[Any] | None) -> Any:
    """This rank's entry of a per-rank list saved with the same number of ranks; else None."""
    if not per_rank or len(per_rank) != trainer.world_size:
        return None
    return per_rank[trainer.global_rank]
