"""The training job behind `src/train.py`: build everything from the Hydra config, fit, test, write metrics.json."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from asap.callbacks import BestValidationMetrics
from asap.callbacks.non_finite import NonFiniteLossGuard
from asap.callbacks.stop_on_signal import StopOnSignal, TrainingInterrupted
from asap.pipeline.breakdown import run_breakdown
from asap.pipeline.common import (
    build_lit_module,
    build_loggers,
    drop_callbacks_needing_a_logger,
    finish_wandb,
    hydra_choices,
    hydra_overrides,
    instantiate,
    instantiate_callbacks,
    print_metric_summary,
    test_metrics,
    write_json,
)
from asap.pipeline.global_batch import apply_global_batch
from asap.pipeline.resume import check_same_run, find_resume_point
from asap.utils.console import print_config_tree

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    """Fit ASAP as configured, test the best checkpoint, write `metrics.json`; returns the optimised metric."""
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data, "data")
    module = build_lit_module(cfg)
    callbacks = instantiate_callbacks(cfg.get("callbacks"), monitor=cfg.get("optimized_metric") or "val/AUC")
    checkpoint_dir = _checkpoint_dir(callbacks, output_dir)
    callbacks += _long_job_callbacks(cfg, checkpoint_dir)
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train") and ckpt_path:
        _warn_if_resuming_elsewhere(Path(ckpt_path), callbacks)
    elif cfg.get("train") and not cfg.trainer.get("fast_dev_run"):
        ckpt_path = _automatic_resume(checkpoint_dir, module)
    loggers = build_loggers(cfg)
    callbacks = drop_callbacks_needing_a_logger(callbacks, loggers)
    trainer: L.Trainer = instantiate(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **_checkpoint_plugins(cfg)
    )
    apply_global_batch(trainer, cfg.get("global_batch_size"), cfg.data.batch_size)

    best_val: dict[str, float] = {}
    if cfg.get("train"):
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except TrainingInterrupted as stop:
            finish_wandb(loggers)
            raise SystemExit(stop.exit_status) from stop
        best_val = _best_validation_metrics(trainer)
    test: dict[str, float] = {}
    best_ckpt = _best_checkpoint(trainer)
    if cfg.get("test"):
        ckpt = best_ckpt if cfg.get("train") else cfg.get("ckpt_path")
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True if ckpt else None)
        test = test_metrics(trainer, module)
        predictions = getattr(module, "test_predictions", None)
        if trainer.is_global_zero and predictions:
            from asap.metrics.predictions import save_predictions

            save_predictions(output_dir / "predictions_test.npz", **predictions)
            run_breakdown(cfg, predictions, output_dir, "test", loggers)

    result = {
        "task_name": cfg.task_name,
        "sweep_name": cfg.get("sweep_name"),
        "test": test,
        "best_val": best_val,
        "optimized_metric": cfg.get("optimized_metric"),
        "best_checkpoint": best_ckpt,
        "choices": hydra_choices(),
        "overrides": hydra_overrides(),
        "seed": cfg.seed,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "wall_time_s": round(time.time() - started, 2),
        "config": OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False),
    }
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", result)
        print_metric_summary({"best val": best_val, "test": test})
        log.info("metrics written to %s", output_dir / "metrics.json")
    finish_wandb(loggers)
    return _optimized_value(cfg, best_val, test)


def _checkpoint_dir(callbacks: list[L.Callback], output_dir: Path) -> Path:
    """The folder the checkpoint callbacks write to (`<run folder>/checkpoints` by default)."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath)
    return output_dir / "checkpoints"


def _checkpoint_plugins(cfg: DictConfig) -> dict[str, Any]:
    """Checkpoints written beside their target and renamed into place (asap.models.checkpoint_io)."""
    if cfg.trainer.get("plugins"):  # the config chose its own plugins
        return {}
    from asap.models.checkpoint_io import AtomicCheckpointIO

    return {"plugins": [AtomicCheckpointIO()]}


def _long_job_callbacks(cfg: DictConfig, checkpoint_dir: Path) -> list[L.Callback]:
    """Save-and-stop on SIGTERM / SIGUSR1 / SIGUSR2; stop (or skip) on a non-finite loss."""
    guard = cfg.get("non_finite_loss") or {}
    return [
        StopOnSignal(checkpoint_dir),
        NonFiniteLossGuard(
            action=guard.get("action", "stop"),
            max_skipped=guard.get("max_skipped", 10),
            checkpoint_dir=checkpoint_dir,
        ),
    ]


def _automatic_resume(checkpoint_dir: Path, module: L.LightningModule) -> str | None:
    """The newest intact checkpoint of this run folder (None: a fresh folder starts fresh), said in one line."""
    point = find_resume_point(checkpoint_dir)
    if point is None:
        return None
    check_same_run(point, dict(module.hparams), checkpoint_dir.parent)
    # the train loader resumes mid-epoch through the datamodule's state (asap.data.resumable_loader), not Lightning's
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    if rank_zero_only.rank != 0:  # DDP ranks started by Lightning find the same checkpoint: one of them says so
        return str(point.path)
    for path, reason in point.unreadable:
        log.warning("not resuming from %s, it cannot be read: %s", path.name, reason)
    log.info(
        "resuming from %s (epoch %d, global step %d): this run folder already holds its checkpoints",
        point.path,
        point.epoch,
        point.global_step,
    )
    return str(point.path)


def _best_validation_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The `val/*` metrics of the best epoch, as recorded by the BestValidationMetrics callback."""
    for callback in trainer.callbacks:
        if isinstance(callback, BestValidationMetrics):
            return dict(callback.best)
    return {}


def _warn_if_resuming_elsewhere(ckpt_path: Path, callbacks: list[L.Callback]) -> None:
    """Resuming into a new run folder restarts the best-checkpoint record (Lightning keeps it per folder)."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.dirpath:
            if ckpt_path.resolve().parent != Path(callback.dirpath).resolve():
                log.warning(
                    "resuming from %s in a new run folder: the best checkpoint so far is not carried over, so the "
                    "test uses the best epoch from now on. Resume in place for the same result as an "
                    "uninterrupted run: hydra.run.dir=%s",
                    ckpt_path,
                    ckpt_path.resolve().parent.parent,
                )


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best file of the checkpoint callback that monitors a metric (not the one that keeps `last.ckpt`)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return None


def _optimized_value(cfg: DictConfig, best_val: dict[str, Any], test: dict[str, Any]) -> float | None:
    name = cfg.get("optimized_metric")
    if not name:
        return None
    split, _, metric = name.partition("/")
    source = best_val if split == "val" else test
    value = source.get(metric)
    return float(value) if value is not None else None
