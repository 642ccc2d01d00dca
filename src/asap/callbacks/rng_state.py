"""Save and restore the random-number generators with each checkpoint.

Lightning restores weights, optimiser, schedule and loop counters; with the RNG states too, a run resumed from an
epoch-end checkpoint draws the same shuffles, augmentations and dropout masks as the uninterrupted run. Under DDP
the ranks' generators drift apart (each draws for its own shard), so every rank's states are gathered into the
checkpoint and each rank gets its own back (a checkpoint resumed on another number of ranks gets rank 0's).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from asap.utils.ranks import gather_from_ranks, own_rank


class RNGStateCheckpoint(L.Callback):
    """Store python, numpy and torch (CPU and CUDA) generator states in the checkpoint, per rank."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = _current_states()
        checkpoint["rng_states"] = state
        per_rank = gather_from_ranks(trainer, state)
        if len(per_rank) > 1:
            checkpoint["rng_states"] = dict(per_rank[0], per_rank=per_rank)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng_states")
        if not state:
            return
        state = own_rank(trainer, state.get("per_rank")) or state
        internal = tuple(int(x) for x in state["python"][:-1])
        gauss = state["python"][-1] or None
        random.setstate((state["python_version"], internal, gauss))
        np.random.set_state(("MT19937", np.asarray(state["numpy"]["keys"], dtype=np.uint32), *state["numpy"]["rest"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _current_states() -> dict[str, Any]:
    state = {
        "python": list(random.getstate()[1]) + [random.getstate()[2] or 0],
        "python_version": random.getstate()[0],
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    # plain lists and numbers only: checkpoints load with weights_only=True
    return {"keys": keys.tolist(), "rest": [int(pos), int(has_gauss), float(cached)]}
