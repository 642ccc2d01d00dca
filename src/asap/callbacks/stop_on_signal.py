"""Stop training on SIGTERM / SIGUSR1 / SIGUSR2 with a checkpoint the same command resumes from exactly.

The handler only notes the signal; the stop happens at the next safe point, so a signal that arrives during a step,
a validation or a checkpoint write lets that finish:

- after a training batch that is not the last of its epoch: `checkpoints/interrupted.ckpt` is written (model,
  optimiser, loops, RNG and the train loader's place in the epoch: `asap.data.resumable_loader`);
- otherwise at the start of the next epoch, when the epoch end was checkpointed (`last.ckpt`); when it was not
  (no validation that epoch), training goes on to the next batch end and stops there; after the last epoch, when
  training ends (the final test then runs when the same command is given again).

Under DDP the ranks agree on the stop at each batch end (one boolean all-reduce), so they all stop at the same
step even when only one process got the signal. Then the handler that was installed before Lightning's (submitit's
on SLURM: it requeues the job; see docs/experiments.md) is called, and `TrainingInterrupted` ends the fit. On SLURM
without submitit, SIGUSR1/SIGUSR2 (the time-limit warning asked for with `--signal`) requeues the job with
`scontrol requeue`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from asap.callbacks.checkpoint_files import INTERRUPTED_CHECKPOINT, checkpoints_newest_first

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
WARNING_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # SLURM's `--signal` before the time limit: requeue


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; the same command resumes from it."""

    def __init__(self, signum: int, checkpoint: Path | None, epoch: int, global_step: int) -> None:
        self.signum, self.checkpoint, self.epoch, self.global_step = signum, checkpoint, epoch, global_step
        where = checkpoint if checkpoint is not None else "the epoch-end checkpoint"
        super().__init__(
            f"{signal.Signals(signum).name} received: training stopped at epoch {epoch}, global step "
            f"{global_step}, with its state in {where}; the same command in the same run folder resumes from it"
        )

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's status for a process ended by that signal


class StopOnSignal(L.Callback):
    """Save and stop on SIGTERM / SIGUSR1 / SIGUSR2 at the next safe point (see the module docstring)."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.received: int | None = None
        self._before_lightning: dict[int, Any] = {}
        self._during_fit: dict[int, Any] = {}
        self._saved_at_step: int | None = None

    # ------------------------------------------------------------------ handlers
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # before Lightning installs its own: these are submitit's (SLURM) or the defaults
            self._before_lightning = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._during_fit = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)
        connector = getattr(trainer, "_signal_connector", None)
        if getattr(connector, "received_sigterm", False):  # a SIGTERM while the fit was being set up: ours now
            self.received, connector.received_sigterm = int(signal.SIGTERM), False

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def _restore(self) -> None:
        for signum, handler in self._during_fit.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._during_fit = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        stale = self.checkpoint_dir / INTERRUPTED_CHECKPOINT
        if trainer.is_global_zero and stale.exists():  # the run went past it: epoch-end checkpoints are newer
            stale.unlink()
        if self._stop_requested(trainer):  # in the last epoch's end: saved, stop before the test (it runs on resume)
            self._stop(trainer, None)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    # ------------------------------------------------------------------ safe points
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._saved_at_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Lightning does not resume a checkpoint taken after an epoch's last batch: that one waits for the epoch end
        if not self._stop_requested(trainer) or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        path = self.checkpoint_dir / INTERRUPTED_CHECKPOINT
        trainer.save_checkpoint(path)
        self._stop(trainer, path)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the previous epoch's end was checkpointed (last.ckpt, in its on_train_epoch_end): nothing more to save
        if self._stop_requested(trainer) and self._saved_at_step == trainer.global_step:
            self._stop(trainer, None)

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        local = self.received is not None
        if trainer.world_size > 1:
            return bool(trainer.strategy.reduce_boolean_decision(local, all=False))
        return local

    def _stop(self, trainer: L.Trainer, checkpoint: Path | None) -> None:
        signum = self.received if self.received is not None else int(signal.SIGTERM)  # a rank told by another
        if checkpoint is None:  # the epoch end's, written by the checkpoint callbacks
            checkpoint = next(iter(checkpoints_newest_first(self.checkpoint_dir)), None)
        interrupted = TrainingInterrupted(signum, checkpoint, trainer.current_epoch, trainer.global_step)
        if trainer.is_global_zero:
            log.warning("%s", interrupted)
        self._hand_over(signum, trainer)
        raise interrupted

    def _hand_over(self, signum: int, trainer: L.Trainer) -> None:
        """The job's own handling of the signal, now that the state is saved (submitit requeues and exits)."""
        previous = self._before_lightning.get(signum)
        if callable(previous):
            previous(signum, None)
        elif signum in WARNING_SIGNALS and "SLURM_JOB_ID" in os.environ and trainer.is_global_zero:
            _requeue_slurm_job()


def _requeue_slurm_job() -> None:
    """`scontrol requeue` this job (an array task by its own id); SLURM restarts it in the same folder."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_job}_{task}" if array_job and task else os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        log.warning("requeued SLURM job %s", job_id)
    else:
        log.error("could not requeue SLURM job %s: %s", job_id, result.stderr.strip())
