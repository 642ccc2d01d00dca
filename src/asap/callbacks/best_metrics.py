"""Keep every validation metric of the epoch that was best by the monitored metric (for metrics.json)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class BestValidationMetrics(L.Callback):
    """After each validation, remember all `val/*` metrics when `monitor` improved.

    Runs in `on_validation_end`: the module logs its metrics in its own `on_validation_epoch_end`, which Lightning
    calls after the callbacks' hook of the same name, and `callback_metrics` holds them only afterwards.
    """

    def __init__(self, monitor: str = "val/AUC", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best: dict[str, float] = {}
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        current = metrics.get(self.monitor)
        if current is None:
            return
        previous = self.best.get(self.monitor.removeprefix("val/"))
        better = previous is None or (current > previous if self.mode == "max" else current < previous)
        if better:
            self.best = {k.removeprefix("val/"): v for k, v in metrics.items()}
            self.best_epoch = trainer.current_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict.get("best", {}))
        self.best_epoch = state_dict.get("best_epoch")


def as_float(value: torch.Tensor | float) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)
