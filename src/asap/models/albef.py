"""Start from an ALBEF checkpoint (`ALBEF_4M.pth`, HAMMER's start; `ALBEF.pth`, the ASAP code's start).

ALBEF's keys -> ours:
  visual_encoder.*                      -> image_encoder.vit.*          (pos_embed interpolated to our grid)
  text_encoder.bert.embeddings.*        -> text_encoder.bert.embeddings.*
  text_encoder.bert.encoder.layer.{i}.* -> text_encoder.bert.encoder.layer.{i}.*          (i < text_layers)
                                        -> text_biased_encoder.layers.{i - text_layers}.*  (fusion layers;
                                           attention / crossattention / intermediate / output renamed)
  vision_proj.*, text_proj.*, temp      -> alignment.vision_proj.*, alignment.text_proj.*, alignment.temperature
  *_m (momentum copies), image_queue, text_queue, queue_ptr -> momentum.* when model.momentum.enabled
The MLM head (text_encoder.cls.*), itm_head and anything else is reported as unexpected.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from asap.models.asap import ASAPModel
from asap.models.checkpoint import CheckpointError, read_checkpoint
from asap.models.image_encoder import resize_pos_embed
from asap.models.text_biased_encoder import fusion_key

log = logging.getLogger(__name__)

_BERT_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


@dataclass
class LoadReport:
    path: str
    loaded: list[str] = field(default_factory=list)  # our keys that received a value
    missing: list[str] = field(default_factory=list)  # our keys left as initialised
    # checkpoint keys not used (no counterpart, or a shape that cannot fit)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Counts, with the missing and unexpected keys grouped by their top-level name."""
        return (
            f"ALBEF checkpoint {self.path}: {len(self.loaded)} tensors loaded; "
            f"missing (left as initialised): {_grouped(self.missing)}; unexpected (unused): {_grouped(self.unexpected)}"
        )


def _grouped(keys: list[str]) -> str:
    counts = Counter(k.split(".")[0] for k in keys)
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items())) or "none"


def albef_key(key: str, text_layers: int) -> str | None:
    """Our state-dict key for ALBEF `key` (momentum copies under `momentum.copies`), None if none."""
    parts = key.split(".", 1)
    head, rest = parts[0], parts[1] if len(parts) > 1 else ""
    momentum = head.endswith("_m")
    head = head.removesuffix("_m")
    prefix = "momentum.copies." if momentum else ""
    if head == "visual_encoder":
        return f"{prefix}image_encoder.vit.{rest}"
    if head in ("vision_proj", "text_proj"):
        return f"{prefix}alignment.{head}.{rest}"
    if key == "temp":
        return "alignment.temperature"
    if head == "text_encoder":
        return _bert_key(rest.removeprefix("bert."), text_layers, prefix)
    if not momentum and head in ("image_queue", "text_queue", "queue_ptr"):
        return f"momentum.{head}"
    return None


def _bert_key(rest: str, text_layers: int, prefix: str) -> str | None:
    if rest.startswith("embeddings.") and not rest.endswith("position_ids"):
        return f"{prefix}text_encoder.bert.{rest}"
    match = _BERT_LAYER.match(rest)
    if match is None:
        return None
    index, name = int(match.group(1)), match.group(2)
    if index < text_layers:
        return f"{prefix}text_encoder.bert.encoder.layer.{index}.{name}"
    mapped = fusion_key(name)
    return None if mapped is None else f"{prefix}text_biased_encoder.layers.{index - text_layers}.{mapped}"


def _fit(ours: str, value: Tensor, target: Tensor, model: ASAPModel) -> Tensor | None:
    """`value` shaped for `target`: position embeddings interpolated, queues transposed; None if it cannot fit."""
    if ours.endswith("image_encoder.vit.pos_embed") and value.shape != target.shape:
        value = resize_pos_embed(value, model.image_encoder.vit.patch_embed.grid_size)
    if ours.endswith("_queue") and value.dim() == 2 and value.T.shape == target.shape:
        value = value.T  # ALBEF stores (E, K), ours (K, E)
    if ours.endswith("queue_ptr"):
        value = value.reshape(target.shape)
    return value if value.shape == target.shape else None


@torch.no_grad()
def load_albef_checkpoint(model: ASAPModel, path: str | Path) -> LoadReport:
    """Copy the weights of an ALBEF checkpoint into `model`; returns (and logs) loaded / missing / unexpected."""
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("visual_encoder.") for k in state):
        raise CheckpointError(f"{path} is not an ALBEF checkpoint (no `visual_encoder.*` weights)")
    ours = model.state_dict()
    report = LoadReport(path=str(path))
    text_layers = model.cfg.text_encoder.text_layers
    for key, value in state.items():
        target_key = albef_key(key, text_layers)
        if target_key is None or target_key not in ours or not isinstance(value, Tensor):
            report.unexpected.append(key)
            continue
        fitted = _fit(target_key, value, ours[target_key], model)
        if fitted is None:
            report.unexpected.append(f"{key} (shape {tuple(value.shape)} vs {tuple(ours[target_key].shape)})")
            continue
        ours[target_key].copy_(fitted.to(ours[target_key].dtype))
        report.loaded.append(target_key)
    loaded = set(report.loaded)
    if model.momentum is not None:  # momentum copies the checkpoint does not have start as the online weights
        for name, module in model.momentum_pairs().items():
            if not any(k.startswith(f"momentum.copies.{name}.") for k in loaded):
                model.momentum.reset({name: module})
    report.missing = [k for k in ours if k not in loaded and not k.startswith("momentum.")]
    log.info(report.summary())
    print(report.summary())
    return report
