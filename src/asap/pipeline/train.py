"""The training job behind `src/train.py`: build everything from the Hydra config, fit, test, write metrics.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from asap.callbacks import BestValidationMetrics
from asap.pipeline.common import (
    build_lit_module,
    build_loggers,
    finish_wandb,
    hydra_choices,
    hydra_overrides,
    instantiate_callbacks,
    metric_values,
    print_metric_summary,
    write_json,
)
from asap.utils.console import print_config_tree

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    """Fit ASAP as configured, test the best checkpoint, write `metrics.json`; returns the optimised metric."""
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    module = build_lit_module(cfg)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = build_loggers(cfg)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    best_val: dict[str, float] = {}
    if cfg.get("train"):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        best_val = _best_validation_metrics(trainer)
    test: dict[str, float] = {}
    best_ckpt = _best_checkpoint(trainer)
    if cfg.get("test"):
        ckpt = best_ckpt if cfg.get("train") else cfg.get("ckpt_path")
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True if ckpt else None)
        test = metric_values(trainer.callback_metrics, prefix="test/")
        if trainer.is_global_zero and getattr(module, "test_predictions", None):
            from asap.metrics.predictions import save_predictions

            save_predictions(output_dir / "predictions_test.npz", **module.test_predictions)

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


def _best_validation_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The `val/*` metrics of the best epoch, as recorded by the BestValidationMetrics callback."""
    for callback in trainer.callbacks:
        if isinstance(callback, BestValidationMetrics):
            return dict(callback.best)
    return {}


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    return path or None


def _optimized_value(cfg: DictConfig, best_val: dict[str, Any], test: dict[str, Any]) -> float | None:
    name = cfg.get("optimized_metric")
    if not name:
        return None
    split, _, metric = name.partition("/")
    source = best_val if split == "val" else test
    value = source.get(metric)
    return float(value) if value is not None else None
