"""`ASAPLitModule`: training (eq. 13), DGM4 metrics on val/test, prediction arrays, optimiser (§4.1)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from asap.data.records import fake_cls_of
from asap.errors import ConfigError
from asap.labels import IGNORE_INDEX
from asap.losses import total_loss
from asap.metrics import DGM4Metrics
from asap.models.albef import load_albef_checkpoint
from asap.models.asap import ASAPModel, ASAPOutput
from asap.models.checkpoint import CheckpointError, read_checkpoint
from asap.models.config import ASAPConfig
from asap.models.optim import (
    build_optimizer,
    official_param_groups,
    official_schedule,
    warmup_cosine_schedule,
)

HPARAM_KEYS = ("model", "loss", "ablation", "optim")


def plain(node: Any) -> Any:
    """A deep plain-Python copy (dicts, lists, scalars) of a config node (OmegaConf or not)."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return copy.deepcopy(node)


class ASAPLitModule(L.LightningModule):
    """ASAP as a LightningModule, built from plain containers (the Hydra `model`, `loss`, `ablation`, `optim`).

    load_pretrained: load the weights the config asks for (ALBEF checkpoint, timm / BERT weights); False when
    rebuilding from a checkpoint, whose state dict replaces them anyway.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        loss: Mapping[str, Any],
        ablation: Mapping[str, Any],
        optim: Mapping[str, Any],
        load_pretrained: bool = True,
    ) -> None:
        super().__init__()
        hparams = {
            "model": plain(model),
            "loss": plain(loss),
            "ablation": plain(ablation),
            "optim": plain(optim),
        }
        self.save_hyperparameters(hparams)  # plain containers: the checkpoint loads with weights_only=True
        self.config = ASAPConfig.from_plain(**hparams)
        self.loss_weights = self.config.loss.loss_weights()
        self.model = ASAPModel(
            self.config.model, self.config.loss, self.config.ablation, load_weights=load_pretrained
        )
        if load_pretrained and self.config.model.albef_checkpoint:
            load_albef_checkpoint(self.model, self.config.model.albef_checkpoint)
        if self.config.model.compile:
            self.model.compile_encoders()
        self.val_metrics = DGM4Metrics()
        self.test_metrics = DGM4Metrics()
        self._test_batches: list[dict[str, Tensor]] = []
        self._test_strings: dict[str, list[str]] = {}  # "ids", "image": per-row strings of the test batches
        self.test_predictions: dict[str, np.ndarray] = {}  # the arrays of `save_predictions`, after a test
        self.loss_terms: Mapping[str, Tensor] = {}  # the last training step's terms (read by NonFiniteLossGuard)

    def forward(self, batch: Mapping[str, Any], **kwargs: Any) -> ASAPOutput:
        return self.model(batch, **kwargs)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        momentum = self.model.momentum
        # one EMA update per optimiser step: the later batches of an accumulation window use the same momentum
        # weights, as the other devices' batches of one step on several devices do
        hold = momentum is not None and batch_idx % self._accumulation() != 0
        with momentum.holding() if hold else nullcontext():
            out = self.model(batch, distill_weight=self._distill_weight(batch_idx))
        self.loss_terms = out.losses
        loss = total_loss(out.losses, self.loss_weights)  # eq. 13
        B = batch["input_ids"].shape[0]
        for name, value in out.losses.items():
            self.log(
                f"train/loss_{name}", value.detach().float(), on_epoch=True, batch_size=B, sync_dist=True
            )
        self.log("train/loss", loss.detach(), on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        return loss

    def _accumulation(self) -> int:
        return self.trainer.accumulate_grad_batches if self._trainer is not None else 1

    def _distill_weight(self, batch_idx: int) -> float:
        """HAMMER/ALBEF train.py: alpha * min(1, i / len(data_loader)) in epoch 0, alpha after.

        i and len count optimiser steps (iterations of the official code), so gradient accumulation ramps as the
        same global batch on several devices does.
        """
        alpha = self.config.model.momentum.distill_alpha
        batches = (
            getattr(self.trainer, "num_training_batches", float("inf")) if self._trainer is not None else 0
        )
        if self.current_epoch > 0 or not batches or batches == float("inf"):
            return alpha
        k = self._accumulation()
        return alpha * min(1.0, (batch_idx // k) / math.ceil(batches / k))

    # ------------------------------------------------------------------ validation / test
    def _update(self, metrics: DGM4Metrics, batch: Mapping[str, Any]) -> ASAPOutput:
        out = self.model(batch, compute_losses=False)
        metrics.update(
            out.binary_logits.float(),
            out.multilabel_logits.float(),
            out.box_pred.float(),
            out.token_logits.float(),
            batch["binary_label"],
            batch["multilabel"],
            batch["box"],
            batch["token_labels"],
        )
        return out

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._update(self.val_metrics, batch)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def on_test_epoch_start(self) -> None:
        self._test_batches, self._test_strings = [], {"ids": [], "image": []}
        self.test_predictions = {}

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self._update(self.test_metrics, batch)
        width = self.config.model.max_text_len - 1  # token arrays padded to a fixed width
        tokens = out.token_logits.float()
        self._test_batches.append(
            {
                "index": batch["index"],
                "binary_logits": out.binary_logits.float(),
                "multilabel_logits": out.multilabel_logits.float(),
                "box_pred": out.box_pred.float(),
                "token_logits": F.pad(tokens, (0, 0, 0, width - tokens.shape[1])),
                "token_labels": F.pad(
                    batch["token_labels"], (0, width - tokens.shape[1]), value=IGNORE_INDEX
                ),
                "binary_label": batch["binary_label"],
                "multilabel_label": batch["multilabel"],
                "box_target": batch["box"],
            }
        )
        self._test_strings["ids"].extend(str(i) for i in batch["ids"])
        self._test_strings["image"].extend(str(p) for p in batch["image_path"])

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")
        self.test_predictions = self._gather_predictions()
        self._test_batches, self._test_strings = [], {}

    def _log_metrics(self, metrics: DGM4Metrics, split: str) -> None:
        values = metrics.compute()  # already synchronised across ranks by torchmetrics: no sync_dist
        self.log_dict({f"{split}/{k}": v.double() for k, v in values.items()})  # float64, as computed
        metrics.reset()

    def _gather_predictions(self) -> dict[str, np.ndarray]:
        """The test arrays of every rank, one row per sample (duplicates of the distributed sampler dropped)."""
        if not self._test_batches:
            return {}
        local = {k: torch.cat([b[k] for b in self._test_batches]) for k in self._test_batches[0]}
        distributed = self.trainer.world_size > 1
        arrays = {}
        for key, value in local.items():
            value = self.all_gather(value)  # (world, n, ...) under DDP (rank-major), (n, ...) otherwise
            arrays[key] = (value.flatten(0, 1) if distributed else value).cpu().numpy()
        for key, strings in self._test_strings.items():  # record ids and image paths
            if distributed:
                per_rank: list[list[str]] = [[] for _ in range(self.trainer.world_size)]
                torch.distributed.all_gather_object(per_rank, strings)
                strings = [s for rank_strings in per_rank for s in rank_strings]
            arrays[key] = np.asarray(strings)
        arrays["fake_cls"] = np.asarray([fake_cls_of(row) for row in arrays["multilabel_label"].astype(int)])
        _, first = np.unique(arrays["index"], return_index=True)  # one row per record, by record index
        return {k: v[first] for k, v in arrays.items()}

    # ------------------------------------------------------------------ optimisation (§4.1)
    def configure_optimizers(self) -> dict[str, Any]:
        o = self.config.optim
        optimizer = build_optimizer(
            self.model,
            lr=o.lr,
            weight_decay=o.weight_decay,
            betas=tuple(o.betas),
            param_groups=self._param_groups(),
            decay_all=o.decay_all,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if o.schedule == "official":
            scheduler = official_schedule(
                optimizer,
                steps_per_epoch=self._steps_per_epoch(),
                epochs=self.trainer.max_epochs,
                warmup_lr=o.warmup_lr,
                warmup_stages=o.warmup_stages,
                stage_steps=o.warmup_stage_steps,
                min_lr=o.min_lr,
            )
        else:
            warmup = min(o.warmup_steps, total)
            scheduler = warmup_cosine_schedule(
                optimizer, warmup_steps=warmup, total_steps=total, min_lr=o.min_lr
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (after `estimated_stepping_batches` has set up the training data)."""
        batches = self.trainer.num_training_batches
        if not self.trainer.max_epochs or self.trainer.max_epochs < 1 or batches == float("inf"):
            raise ConfigError(
                "optim.schedule=official steps per epoch: it needs trainer.max_epochs >= 1 and a sized training loader"
            )
        return math.ceil(batches / self.trainer.accumulate_grad_batches)

    def _param_groups(self) -> Mapping[str, Any] | None:
        """`optim.param_groups`: null (one group), "official" (the image side at lr, the rest at rest_lr), a dict."""
        o = self.config.optim
        if o.param_groups != "official":
            return o.param_groups
        return official_param_groups(self.model, image_lr=o.lr, rest_lr=o.rest_lr)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def load_from_checkpoint_safely(
        cls, path: str | Path, map_location: str | torch.device = "cpu"
    ) -> ASAPLitModule:
        """Rebuild from a checkpoint's saved hyper-parameters (config dataclasses, never `_target_` strings).

        Loads with `torch.load(weights_only=True)`; a corrupt, truncated or foreign file raises CheckpointError.
        """
        checkpoint = read_checkpoint(path, map_location)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise CheckpointError(f"{path} is not a Lightning checkpoint (no `state_dict`)")
        hparams = checkpoint.get("hyper_parameters") or {}
        if not all(k in hparams for k in HPARAM_KEYS):
            raise CheckpointError(
                f"{path} is not an ASAP checkpoint: its hyper-parameters lack {[k for k in HPARAM_KEYS if k not in hparams]}"
            )
        try:
            module = cls(**{k: hparams[k] for k in HPARAM_KEYS}, load_pretrained=False)
        except ConfigError as err:
            raise CheckpointError(f"{path}: its saved configuration is not valid here: {err}") from err
        try:
            module.load_state_dict(checkpoint["state_dict"], strict=True)
        except RuntimeError as err:
            raise CheckpointError(
                f"{path}: weights do not match the model its hyper-parameters describe: {err}"
            ) from err
        return module.to(map_location).eval()
