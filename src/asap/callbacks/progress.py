"""Progress and model summary that stay readable in a log: rich on a terminal, plain log lines anywhere else.

Off a terminal (a `| tee`, a SLURM log, CI) rich draws no live bar and cuts its tables to 80 columns, so there
the progress is a log line every `every_s` seconds and at the end of each stage (as generate_aux_text.py does),
and the model summary is Lightning's plain one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, RichModelSummary, RichProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from asap.metrics.breakdown import HEADLINE_METRICS
from asap.utils.console import console

log = logging.getLogger(__name__)


class LogProgressBar(ProgressBar):
    """Lightning progress as log lines: `train epoch 2: 40/120 batches, loss 1.234` every `every_s` seconds."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._enabled = True
        self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _report(
        self, stage: str, done: int, total: int | float, trainer: L.Trainer, final: bool = False, prefix: str = ""
    ) -> None:
        """One line; `prefix` (e.g. "val/"): the headline metrics logged under it instead of the bar's metrics."""
        now = time.monotonic()
        if not self._enabled or not trainer.is_global_zero or (not final and now - self._last < self.every_s):
            return
        self._last = now
        if prefix:
            logged = trainer.callback_metrics
            shown = {f"{prefix}{m}": float(logged[f"{prefix}{m}"]) for m in HEADLINE_METRICS if f"{prefix}{m}" in logged}
        else:
            shown = {k: v for k, v in self.get_metrics(trainer, trainer.lightning_module).items() if k != "v_num"}
        values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        of = f"/{total}" if total != float("inf") else ""
        epoch = f" epoch {trainer.current_epoch}" if stage != "test" else ""  # a test has no epoch of its own
        log.info("%s%s: %d%s batches%s", stage, epoch, done, of, f", {values}" if values else "")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._report("train", args[-1] + 1, self.total_train_batches, trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        self._report("train", done, self.total_train_batches, trainer, final=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            total = self.total_val_batches
            self._report("validation", int(total), total, trainer, final=True, prefix="val/")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = sum(trainer.num_test_batches)
        self._report("test", int(total), total, trainer, final=True, prefix="test/")


def progress_bar(every_s: float = 30.0) -> ProgressBar:
    """RichProgressBar on a terminal, LogProgressBar anywhere else."""
    return RichProgressBar() if console.is_terminal else LogProgressBar(every_s)


def model_summary(max_depth: int = 1) -> ModelSummary:
    """RichModelSummary on a terminal, Lightning's plain (logged, never cut) summary anywhere else."""
    return RichModelSummary(max_depth=max_depth) if console.is_terminal else ModelSummary(max_depth=max_depth)
