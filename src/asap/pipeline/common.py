"""Pieces shared by the train and eval jobs: building the module, callbacks and loggers, writing results."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from asap.callbacks import BestValidationMetrics, RNGStateCheckpoint
from asap.errors import UserError
from asap.utils.console import console, metrics_table

log = logging.getLogger(__name__)


def container(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (dicts and lists only)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_lit_module(cfg: DictConfig) -> L.LightningModule:
    """The ASAP LightningModule from the model, loss, ablation and optim nodes (plain containers, no `_target_`).

    A value of the wrong type (e.g. `loss.alpha=abc`) is a UserError naming the nodes, not a traceback.
    """
    from asap.errors import ConfigError
    from asap.models import ASAPLitModule

    try:
        return ASAPLitModule(
            model=container(cfg.model),
            loss=container(cfg.loss),
            ablation=container(cfg.ablation),
            optim=container(cfg.optim),
        )
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise UserError(f"the model / loss / ablation / optim config cannot be used: {err}") from err


def instantiate(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, with a wrong argument in the config (`+trainer.foo=1`) as a UserError."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        raise UserError(f"the {what} config cannot be used: {err.__cause__ or err}") from err


def instantiate_callbacks(callbacks_cfg: DictConfig | None, *, monitor: str = "val/AUC") -> list[L.Callback]:
    """Callbacks from config, plus the ones every run needs (best-validation record, RNG state in checkpoints)."""
    callbacks: list[L.Callback] = []
    for name, node in (callbacks_cfg or {}).items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.debug("callback %s <%s>", name, node._target_)
            callbacks.append(instantiate(node, f"callbacks.{name}"))
    callbacks += [BestValidationMetrics(monitor=monitor), RNGStateCheckpoint()]
    return callbacks


def drop_callbacks_needing_a_logger(callbacks: list[L.Callback], loggers: list[Logger]) -> list[L.Callback]:
    """With `logger=none`, the learning-rate monitor has nowhere to write (Lightning would refuse to start)."""
    if loggers:
        return callbacks
    dropped = [c for c in callbacks if isinstance(c, LearningRateMonitor)]
    if dropped:
        log.info("no logger configured: the learning-rate monitor is off")
    return [c for c in callbacks if c not in dropped]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """Loggers from config; a W&B run gets a readable name from the overrides and the resolved config."""
    loggers: list[Logger] = []
    for name, node in (cfg.get("logger") or {}).items():
        if not (isinstance(node, DictConfig) and "_target_" in node):
            continue
        kwargs: dict[str, Any] = {}
        if name == "wandb" and not node.get("name"):
            kwargs["name"] = run_name_from_overrides(cfg)
        logger = instantiate(node, f"logger.{name}", **kwargs)
        if isinstance(logger, WandbLogger):  # the config, and the group choices to group runs by on W&B
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True) | {"choices": hydra_choices()})
        loggers.append(logger)
    return loggers


def run_name_from_overrides(cfg: DictConfig) -> str:
    """`table9_alpha/loss.alpha=0.5,seed=2` style names; the task name when there are no overrides."""
    overrides = [o for o in hydra_overrides() if not o.startswith(("sweep=", "hydra.", "logger="))]
    base = cfg.get("sweep_name") if cfg.get("sweep_name") not in (None, "adhoc") else cfg.task_name
    return f"{base}/{','.join(overrides)}" if overrides else str(base)


def hydra_overrides() -> list[str]:
    """The task overrides of the current Hydra job (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def hydra_choices() -> dict[str, str]:
    """The config-group choices of the current Hydra job (e.g. {"ablation": "full", ...})."""
    if not HydraConfig.initialized():
        return {}
    choices = OmegaConf.to_container(HydraConfig.get().runtime.choices)
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra/")}


def metric_values(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """`{name: float}` for the metrics under `prefix` (e.g. "test/"), prefix removed."""
    out = {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            out[key.removeprefix(prefix)] = float(value.item() if isinstance(value, torch.Tensor) else value)
    return out


def test_metrics(trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
    """The `test/*` metrics with each test sample counted once (train and eval jobs, one or several processes).

    Under DDP the metrics synchronised across ranks also count the samples the distributed sampler repeats to fill
    the last batch; the predictions gathered from every rank hold each sample once (`ASAPLitModule`, by record
    index), as the protocol scores them, so those are scored instead (on every rank: the same numbers).
    """
    predictions = getattr(module, "test_predictions", None)
    if predictions and trainer.world_size > 1:
        from asap.metrics.predictions import score_predictions

        log.info("DDP: test metrics scored on the %d gathered test predictions", len(predictions["index"]))
        return score_predictions(predictions)
    return metric_values(trainer.callback_metrics, prefix="test/")


def print_metric_summary(columns: Mapping[str, Mapping[str, float]]) -> None:
    """The 12 DGM4 metrics (and extras) per column, as a rich table."""
    from asap.metrics import EXTRA_METRIC_NAMES, METRIC_NAMES

    present = {k: v for k, v in columns.items() if v}
    if not present:
        return
    names = list(METRIC_NAMES) + [n for n in EXTRA_METRIC_NAMES if any(n in v for v in present.values())]
    console.print(metrics_table("DGM4 metrics (x100)", present, names))


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def finish_wandb(loggers: list[Logger]) -> None:
    """End this job's W&B run so the next job of a multirun gets its own (see ecosystem notes)."""
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        wandb.finish()
