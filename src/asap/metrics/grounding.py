"""Grounding: the manipulated face box (IoU_mean, IoU50, IoU75) and the manipulated tokens (P, R, F1).

Both keep only sums, so a whole test split (50K x 128 tokens) costs a few scalars of state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from asap.labels import IGNORE_INDEX
from asap.metrics._checks import check_batch, check_shape, check_values
from asap.metrics.functional import box_iou_pairs, no_box_match, precision_recall_f1, token_counts


class BoxGroundingMetrics(Metric):
    """IoU_mean, IoU50, IoU75 over all samples, no-box samples included (fractions; x100 in `DGM4Metrics`).

    Per-pair IoU with HAMMER's no-box rule (see `no_box_match`); IoU50/IoU75 count IoU > 0.5 / > 0.75
    (strict). Extras `*_boxed`: the plain IoU (no rule) over samples whose target is not [0, 0, 0, 0], i.e.
    the grounding quality alone. NaN where no sample (resp. no boxed sample) was seen.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validate_args = validate_args
        for prefix in ("", "boxed_"):
            self.add_state(
                f"{prefix}iou_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
            for name in ("n50", "n75", "count"):
                self.add_state(f"{prefix}{name}", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, box_pred: Tensor, box_target: Tensor) -> None:
        """box_pred, box_target (B, 4) cx, cy, w, h normalised to [0, 1]; target zeros when there is no box."""
        if self.validate_args:
            check_shape("box_pred", box_pred, (None, 4))
            check_shape("box_target", box_target, (None, 4))
            check_batch("box_pred", box_pred, "box_target", box_target)
        pred, target = box_pred.detach(), box_target.detach()
        plain = box_iou_pairs(pred, target)  # (B,) float32
        self._add(torch.where(no_box_match(pred, target), torch.ones_like(plain), plain), "")
        self._add(plain[(target != 0).any(dim=-1)], "boxed_")

    def _add(self, iou: Tensor, prefix: str) -> None:
        setattr(self, f"{prefix}iou_sum", getattr(self, f"{prefix}iou_sum") + iou.double().sum())
        setattr(self, f"{prefix}n50", getattr(self, f"{prefix}n50") + (iou > 0.5).sum())
        setattr(self, f"{prefix}n75", getattr(self, f"{prefix}n75") + (iou > 0.75).sum())
        setattr(self, f"{prefix}count", getattr(self, f"{prefix}count") + iou.numel())

    def compute(self) -> dict[str, Tensor]:
        out = {}
        for prefix, suffix in (("", ""), ("boxed_", "_boxed")):
            count = getattr(self, f"{prefix}count").double()  # 0 -> NaN
            out[f"IoU_mean{suffix}"] = getattr(self, f"{prefix}iou_sum") / count
            out[f"IoU50{suffix}"] = getattr(self, f"{prefix}n50") / count
            out[f"IoU75{suffix}"] = getattr(self, f"{prefix}n75") / count
        return out


class TokenGroundingMetrics(Metric):
    """Micro Precision, Recall, F1 of manipulated tokens over all tokens of all samples (fractions).

    Prediction = argmax of the 2-way token logits (a tie goes to real); padding (-100) is ignored, real
    captions count. Where a denominator is 0 (no predicted fake token: P; no fake token: R; P + R = 0: F1)
    the value is 0, sklearn's default; the reference code crashes there.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: Tensor
    fp: Tensor
    fn: Tensor

    def __init__(self, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validate_args = validate_args
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, token_logits: Tensor, token_labels: Tensor) -> None:
        """token_logits (B, L, 2); token_labels (B, L): 1 manipulated, 0 real, -100 padding."""
        if self.validate_args:
            check_shape("token_logits", token_logits, (None, None, 2))
            check_shape("token_labels", token_labels, (None, token_logits.shape[1]))
            check_batch("token_logits", token_logits, "token_labels", token_labels)
            check_values("token_labels", token_labels, (IGNORE_INDEX, 0, 1))
        tp, fp, fn = token_counts(token_logits.detach(), token_labels.detach())
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def compute(self) -> dict[str, Tensor]:
        precision, recall, f1 = precision_recall_f1(self.tp, self.fp, self.fn)
        return {"Precision": precision, "Recall": recall, "F1": f1}
