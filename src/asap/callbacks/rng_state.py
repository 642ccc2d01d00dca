"""Save and restore the random-number generators with each checkpoint.

Lightning restores weights, optimiser, schedule and loop counters; with the RNG states too, a run resumed from an
epoch-end checkpoint draws the same shuffles, augmentations and dropout masks as the uninterrupted run.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RNGStateCheckpoint(L.Callback):
    """Store python, numpy and torch (CPU and CUDA) generator states in the checkpoint."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = {
            "python": list(random.getstate()[1]) + [random.getstate()[2] or 0],
            "python_version": random.getstate()[0],
            "numpy": _numpy_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_states"] = state

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng_states")
        if not state:
            return
        internal = tuple(int(x) for x in state["python"][:-1])
        gauss = state["python"][-1] or None
        random.setstate((state["python_version"], internal, gauss))
        np.random.set_state(("MT19937", np.asarray(state["numpy"]["keys"], dtype=np.uint32), *state["numpy"]["rest"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    # plain lists and numbers only: checkpoints load with weights_only=True
    return {"keys": keys.tolist(), "rest": [int(pos), int(has_gauss), float(cached)]}
