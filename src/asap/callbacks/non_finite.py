"""Stop (or skip) a training step whose loss is NaN or infinite, before the optimiser sees it.

One `isfinite` on the detached total per step, before the backward pass (a device sync on a GPU, nothing like
`detect_anomaly`); only when it fails are the loss terms the module exposes (`loss_terms`: the dict the model
returns, whatever its names) looked at. Stopping raises `NonFiniteLossError` naming the global step, the terms that
are not finite and the record indices of the batch: the optimiser has not stepped on it and no checkpoint holds it.
With `action="skip"` the step's gradients are dropped instead (the optimiser leaves every parameter and moment as it
was; the learning-rate schedule still advances one step), the count is logged as `train/skipped_steps` and kept in
checkpoints, and the run stops once more than `max_skipped` steps were skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from asap.callbacks.checkpoint_files import checkpoints_newest_first
from asap.errors import NonFiniteLossError

log = logging.getLogger(__name__)
ACTIONS = ("stop", "skip")


class NonFiniteLossGuard(L.Callback):
    """See the module docstring. checkpoint_dir: where the run's checkpoints are (named in the message)."""

    def __init__(
        self, action: str = "stop", max_skipped: int = 10, checkpoint_dir: str | Path | None = None
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"non_finite_loss.action must be one of {ACTIONS}, got {action!r}")
        if max_skipped < 0:
            raise ValueError(f"non_finite_loss.max_skipped must be >= 0, got {max_skipped}")
        self.action, self.max_skipped = action, max_skipped
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.skipped = 0
        self._batch: Any = None
        self._batch_idx = -1
        self._drop_gradients = False

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch, self._batch_idx = batch, batch_idx

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:  # every rank stops (or skips) together
            bad = bool(trainer.strategy.reduce_boolean_decision(bad, all=False))
        if not bad:
            return
        message = self.describe(trainer, pl_module, loss)
        if self.action == "stop":
            raise NonFiniteLossError(
                f"{message}. Training stopped: the optimiser did not step on it and no checkpoint holds it "
                f"({self._last_checkpoint()}). Lower optim.lr, set trainer.gradient_clip_val, or skip such steps "
                f"with non_finite_loss.action=skip"
            )
        self.skipped += 1
        if self.skipped > self.max_skipped:
            raise NonFiniteLossError(
                f"{message}. That is {self.skipped} skipped steps, more than non_finite_loss.max_skipped="
                f"{self.max_skipped}: training stopped ({self._last_checkpoint()})"
            )
        log.warning("%s: step skipped (%d of at most %d)", message, self.skipped, self.max_skipped)
        self._drop_gradients = True

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._drop_gradients:  # a parameter without a gradient is left alone by the optimiser
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
            self._drop_gradients = False
        if self.action == "skip":
            pl_module.log("train/skipped_steps", float(self.skipped), on_step=True, on_epoch=False, batch_size=1)

    def describe(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> str:
        """Step, epoch and batch; the non-finite terms (of all terms); the batch's record indices."""
        terms: Mapping[str, Tensor] = getattr(pl_module, "loss_terms", None) or {}
        bad = {name: _value(v) for name, v in terms.items() if not bool(torch.isfinite(v.detach()).all())}
        if bad:
            named = ", ".join(f"{name}={value}" for name, value in bad.items())
        else:
            named = "none of the terms (their weighted sum overflowed)"
        where = f"global step {trainer.global_step} (epoch {trainer.current_epoch}, batch {self._batch_idx}"
        where += f", rank {trainer.global_rank})" if trainer.world_size > 1 else ")"
        return (
            f"non-finite training loss at {where}: total={_value(loss)}; non-finite term(s): {named} "
            f"(of {', '.join(terms) or 'no terms exposed by the module'}); record indices of the batch: "
            f"{_indices(self._batch)}"
        )

    def _last_checkpoint(self) -> str:
        newest = checkpoints_newest_first(self.checkpoint_dir) if self.checkpoint_dir else []
        return f"the last checkpoint is {newest[0]}" if newest else "no checkpoint was written yet"

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))


def _value(tensor: Tensor) -> float | str:
    value = tensor.detach().float()
    if value.numel() == 1:
        return float(value)
    return f"{int((~torch.isfinite(value)).sum())} of {value.numel()} values non-finite"


def _indices(batch: Any) -> list[int] | str:
    index = batch.get("index") if isinstance(batch, Mapping) else None
    if not isinstance(index, Tensor):
        return "not in the batch"
    return [int(i) for i in index.tolist()]


