"""W&B media of a few fixed validation samples after each validation: the image with the predicted and the true
face box, and the caption with the predicted and the true manipulated words.

Global rank 0 only; a no-op when no `WandbLogger` is attached (so it can stay in every config).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from asap.data.transforms import CLIP_MEAN, CLIP_STD

log = logging.getLogger(__name__)

PRED, TRUE = 0, 1
BOX_CLASS_LABELS = {PRED: "pred", TRUE: "true"}
TYPE_NAMES = ("FS", "FA", "TS", "TA")
TRUE_STYLE = "border-bottom:2px solid #d62728"  # true manipulated word: red underline
PRED_STYLE = "background:#ffe066"  # predicted manipulated word: yellow background
LEGEND = (
    f'<span style="{PRED_STYLE}">predicted</span> / <span style="{TRUE_STYLE}">true</span> manipulated words'
)


class WandbValidationSamples(L.Callback):
    """Log `num_samples` fixed validation samples (evenly spread over the set) to W&B every `every_n_epochs`.

    Logs `<key>/images` (`wandb.Image`s with `boxes=` "pred" and "true"), `<key>/captions` (`wandb.Html`: predicted
    manipulated words highlighted, true ones underlined) and `<key>/table` (a `wandb.Table`: id, image, caption,
    true and predicted manipulation types, p(fake); W&B stores tables with media as run artifacts, uploaded by
    `wandb sync` like the rest).
    """

    def __init__(self, num_samples: int = 8, every_n_epochs: int = 1, key: str = "val/samples") -> None:
        if num_samples < 1 or every_n_epochs < 1:
            raise ValueError(f"num_samples and every_n_epochs must be >= 1, got {num_samples}, {every_n_epochs}")
        self.num_samples, self.every_n_epochs, self.key = num_samples, every_n_epochs, key
        self._batch: dict[str, Any] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = wandb_logger(trainer)
        if logger is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        batch = move_data_to_device(self._fixed_batch(trainer), pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            out = pl_module(batch, compute_losses=False)
        pl_module.train(was_training)
        images, captions, table = self._media(trainer, batch, out)
        logger.experiment.log(
            {
                f"{self.key}/images": images,
                f"{self.key}/captions": captions,
                f"{self.key}/table": table,
                "trainer/global_step": trainer.global_step,
            }
        )

    def _fixed_batch(self, trainer: L.Trainer) -> dict[str, Any]:
        """The same samples every epoch: `num_samples` indices evenly spread over the validation set."""
        if self._batch is None:
            loader = trainer.val_dataloaders
            loader = loader[0] if isinstance(loader, Sequence) else loader
            if loader is None or not hasattr(loader, "dataset"):
                raise RuntimeError("WandbValidationSamples needs a validation DataLoader")
            size = len(loader.dataset)
            indices = sorted({int(i) for i in np.linspace(0, size - 1, min(self.num_samples, size))})
            self._batch = loader.collate_fn([loader.dataset[i] for i in indices])
        return self._batch

    def _media(self, trainer: L.Trainer, batch: Mapping[str, Any], out: Any) -> tuple[list[Any], list[Any], Any]:
        import wandb

        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if tokenizer is None:
            raise RuntimeError("WandbValidationSamples needs a datamodule with a `tokenizer` to show the captions")
        p_fake = out.binary_logits.float().softmax(-1)[:, 1].cpu()
        p_types = out.multilabel_logits.float().sigmoid().cpu()
        token_pred = out.token_logits.float().argmax(-1).cpu()
        table = wandb.Table(columns=["id", "image", "caption", "true types", "predicted types", "p(fake)"])
        images, captions = [], []
        for i, sample_id in enumerate(batch["ids"]):
            true_box = batch["box"][i].tolist() if bool(batch["has_box"][i]) else None
            boxes = image_boxes(out.box_pred[i].float().tolist(), true_box, float(p_fake[i]))
            true_types = types_text(batch["multilabel"][i].cpu() > 0.5)
            pred_types = types_text(p_types[i] > 0.5)
            caption = f"{sample_id}: true {true_types} | pred {pred_types}, p(fake) {float(p_fake[i]):.2f}"
            image = wandb.Image(denormalize(batch["image"][i]), boxes=boxes, caption=caption)
            n = int(batch["attention_mask"][i].sum()) - 1  # word-pieces without [CLS]
            tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][i, 1 : n + 1].tolist())
            true_tokens = batch["token_labels"][i, :n].cpu().tolist()
            text = wandb.Html(caption_html(tokens, true_tokens, token_pred[i, :n].tolist()))
            images.append(image)
            captions.append(text)
            table.add_data(str(sample_id), image, text, true_types, pred_types, round(float(p_fake[i]), 4))
        return images, captions, table


def wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    """The trainer's WandbLogger, or None."""
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def denormalize(image: Tensor) -> np.ndarray:
    """A CLIP-normalised (3, H, W) image -> uint8 (H, W, 3)."""
    mean = torch.tensor(CLIP_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=image.device).view(3, 1, 1)
    pixels = (image.float() * std + mean).clamp(0, 1) * 255
    return pixels.round().byte().permute(1, 2, 0).cpu().numpy()


def box_entry(box_cxcywh: Sequence[float], class_id: int, caption: str, scores: dict[str, float]) -> dict[str, Any]:
    """One `box_data` entry of `wandb.Image(boxes=...)` from a normalised (cx, cy, w, h) box."""
    cx, cy, w, h = (float(v) for v in box_cxcywh)
    return {
        "position": {"middle": [cx, cy], "width": w, "height": h},
        "class_id": class_id,
        "box_caption": caption,
        "scores": scores,
    }


def image_boxes(
    pred_box: Sequence[float], true_box: Sequence[float] | None, p_fake: float
) -> dict[str, dict[str, Any]]:
    """`boxes=` of `wandb.Image`: the predicted box ("pred") and, when the sample has one, the true box ("true")."""
    boxes = {
        "predictions": {
            "box_data": [box_entry(pred_box, PRED, f"pred (p(fake) {p_fake:.2f})", {"p_fake": p_fake})],
            "class_labels": BOX_CLASS_LABELS,
        }
    }
    if true_box is not None:
        boxes["ground_truth"] = {
            "box_data": [box_entry(true_box, TRUE, "true", {})],
            "class_labels": BOX_CLASS_LABELS,
        }
    return boxes


def types_text(flags: Tensor | Sequence[bool]) -> str:
    """[FS, FA, TS, TA] flags -> "FS+TA" (or "orig" when none is set)."""
    names = [name for name, on in zip(TYPE_NAMES, flags, strict=True) if bool(on)]
    return "+".join(names) or "orig"


def caption_html(tokens: Sequence[str], true: Sequence[int], pred: Sequence[int]) -> str:
    """The caption as HTML words: predicted manipulated words highlighted, true ones underlined.

    tokens: word-pieces without [CLS] ("##" continues a word); true / pred: 1 = manipulated, per word-piece
    (-100 = padding, ignored). A word is manipulated when any of its pieces is.
    """
    if not len(tokens) == len(true) == len(pred):
        raise ValueError(f"tokens, true and pred differ in length: {len(tokens)}, {len(true)}, {len(pred)}")
    words: list[list[Any]] = []  # [text, true, pred]
    for token, t, p in zip(tokens, true, pred, strict=True):
        if token.startswith("##") and words:
            words[-1][0] += token[2:]
            words[-1][1] |= t == 1
            words[-1][2] |= p == 1
        else:
            words.append([token, t == 1, p == 1])
    spans = []
    for text, is_true, is_pred in words:
        style = ";".join(s for s, on in ((TRUE_STYLE, is_true), (PRED_STYLE, is_pred)) if on)
        escaped = html.escape(text)
        spans.append(f'<span style="{style}">{escaped}</span>' if style else escaped)
    return f'<p style="font-family:sans-serif">{" ".join(spans)}</p><p style="font-size:80%">{LEGEND}</p>'
