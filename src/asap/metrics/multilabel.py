"""Multi-label manipulation type [FS, FA, TS, TA]: mAP, CF1, OF1 (+ per-class AP and F1) from the raw logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from asap.metrics._checks import check_batch, check_shape, check_values
from asap.metrics.functional import multilabel_counts, multilabel_f1, protocol_average_precision
from asap.metrics.names import TYPE_NAMES

NAN = float("nan")


class MultiLabelMetrics(Metric):
    """mAP, CF1, OF1 of the manipulation types (fractions; `DGM4Metrics` reports them x100).

    Scores are the raw logits (float32), prediction = logit >= 0. mAP is the protocol's non-interpolated AP
    (not sklearn's: tied scores are not grouped), averaged over the classes that have a positive (like
    torchmetrics' macro AP). CF1 is the harmonic mean of macro P and macro R, with Np taken as 1 where it is 0.
    Extras: `AP_<type>`, `F1_<type>` (Figure 6 of the paper), CP, CR, OP, OR. See `multilabel_f1` for NaNs.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    logits: list[Tensor]
    labels: list[Tensor]

    def __init__(
        self, class_names: Sequence[str] = TYPE_NAMES, validate_args: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.class_names = tuple(class_names)
        self.validate_args = validate_args
        self.add_state("logits", default=[], dist_reduce_fx="cat")  # (N, K) float32
        self.add_state("labels", default=[], dist_reduce_fx="cat")  # (N, K) long 0/1

    def update(self, multilabel_logits: Tensor, multilabel_label: Tensor) -> None:
        """multilabel_logits (B, K); multilabel_label (B, K) 0/1 (int, bool or float)."""
        if self.validate_args:
            k = len(self.class_names)
            check_shape("multilabel_logits", multilabel_logits, (None, k))
            check_shape("multilabel_label", multilabel_label, (None, k))
            check_batch("multilabel_logits", multilabel_logits, "multilabel_label", multilabel_label)
            check_values("multilabel_label", multilabel_label, (0, 1))
        self.logits.append(multilabel_logits.detach().float())
        self.labels.append(multilabel_label.detach().long())

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.logits, list) and not self.logits:
            nan = torch.tensor(NAN, dtype=torch.float64, device=self.device)
            return {name: nan.clone() for name in self._names()}
        logits, labels = dim_zero_cat(self.logits), dim_zero_cat(self.labels)  # (N, K)
        ap = protocol_average_precision(logits, labels)  # (K,) NaN for a class with no positive
        stats = multilabel_f1(*multilabel_counts(logits, labels))
        out = {"mAP": ap.nanmean(), "CF1": stats["CF1"], "OF1": stats["OF1"]}
        out |= {f"AP_{c}": ap[i] for i, c in enumerate(self.class_names)}
        out |= {f"F1_{c}": stats["f1"][i] for i, c in enumerate(self.class_names)}
        out |= {k: stats[k] for k in ("CP", "CR", "OP", "OR")}
        return out

    def _names(self) -> list[str]:
        per_class = [f"{p}_{c}" for p in ("AP", "F1") for c in self.class_names]
        return ["mAP", "CF1", "OF1", *per_class, "CP", "CR", "OP", "OR"]
