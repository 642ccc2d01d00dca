"""Binary real/fake detection: AUC, EER (interpolated ROC root) and ACC, from the 2-way logits."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from asap.metrics._checks import check_batch, check_shape, check_values
from asap.metrics.functional import binary_predictions, binary_scores, interpolated_eer, roc_curve

NAN = float("nan")


class BinaryDetectionMetrics(Metric):
    """AUC, EER and ACC of real/fake detection (fractions; `DGM4Metrics` reports them x100).

    Score = softmax(binary_logits)[:, 1] in float32; ACC from the argmax (a tie goes to real). The ROC is
    computed in float64 (torchmetrics' `BinaryROC`/`BinaryAUROC` divide in float32: ~5e-6 off on the x100
    scale at 50K samples). AUC and EER are NaN unless both classes are present; everything is NaN with no
    sample.
    """

    is_differentiable = False
    higher_is_better = None  # AUC, ACC up; EER down
    full_state_update = False

    scores: list[Tensor]
    labels: list[Tensor]
    correct: Tensor
    total: Tensor

    def __init__(self, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validate_args = validate_args
        self.add_state("scores", default=[], dist_reduce_fx="cat")  # (N,) float32 P(fake)
        self.add_state("labels", default=[], dist_reduce_fx="cat")  # (N,) long 0/1
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, binary_logits: Tensor, binary_label: Tensor) -> None:
        """binary_logits (B, 2) [real, fake]; binary_label (B,) 1 = fake."""
        if self.validate_args:
            check_shape("binary_logits", binary_logits, (None, 2))
            check_shape("binary_label", binary_label, (None,))
            check_batch("binary_logits", binary_logits, "binary_label", binary_label)
            check_values("binary_label", binary_label, (0, 1))
        logits, label = binary_logits.detach(), binary_label.detach().long()
        self.scores.append(binary_scores(logits))
        self.labels.append(label)
        self.correct += (binary_predictions(logits) == label).sum()
        self.total += label.numel()

    def compute(self) -> dict[str, Tensor]:
        acc = self.correct.double() / self.total.double()  # NaN with no sample
        if isinstance(self.scores, list) and not self.scores:
            nan = torch.tensor(NAN, dtype=torch.float64, device=acc.device)
            return {"AUC": nan, "EER": nan.clone(), "ACC": acc}
        fpr, tpr = roc_curve(dim_zero_cat(self.scores), dim_zero_cat(self.labels))  # NaN if a class is absent
        return {"AUC": torch.trapezoid(tpr, fpr), "EER": interpolated_eer(fpr, tpr), "ACC": acc}
