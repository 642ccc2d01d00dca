"""`DGM4Metrics`: the four metric groups behind one update/compute, reported x100 under the paper's names."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchmetrics import MetricCollection

from asap.metrics.binary import BinaryDetectionMetrics
from asap.metrics.grounding import BoxGroundingMetrics, TokenGroundingMetrics
from asap.metrics.multilabel import MultiLabelMetrics
from asap.metrics.names import ALL_METRIC_NAMES

# the arguments of `DGM4Metrics.update`, in order (each group's `update` takes the ones named like its params)
INPUT_NAMES = (
    "binary_logits",
    "multilabel_logits",
    "box_pred",
    "token_logits",
    "binary_label",
    "multilabel_label",
    "box_target",
    "token_labels",
)


class DGM4Metrics(MetricCollection):
    """The 12 DGM4 metrics (x100, float64) plus extras, correct under DDP (torchmetrics syncs each group).

    `update(binary_logits (B,2), multilabel_logits (B,4), box_pred (B,4), token_logits (B,L,2),
    binary_label (B,), multilabel_label (B,4), box_target (B,4), token_labels (B,L))`;
    `compute()` -> `{name: Tensor}` for `METRIC_NAMES` then `EXTRA_METRIC_NAMES`. The binary and multi-label
    groups keep their scores (cat states, ~40 bytes a sample); the grounding groups keep sums only.
    `metric_kwargs` (e.g. `compute_on_cpu=True`, `validate_args=False`) go to every group.
    """

    def __init__(self, **metric_kwargs: Any) -> None:
        super().__init__(
            {
                "binary": BinaryDetectionMetrics(**metric_kwargs),
                "multilabel": MultiLabelMetrics(**metric_kwargs),
                "box": BoxGroundingMetrics(**metric_kwargs),
                "token": TokenGroundingMetrics(**metric_kwargs),
            },
            compute_groups=False,  # the groups share no state
        )

    def update(  # type: ignore[override]
        self,
        binary_logits: Tensor,
        multilabel_logits: Tensor,
        box_pred: Tensor,
        token_logits: Tensor,
        binary_label: Tensor,
        multilabel_label: Tensor,
        box_target: Tensor,
        token_labels: Tensor,
    ) -> None:
        """Accumulate one batch (shapes in the class docstring); each group takes its own arguments by name."""
        inputs = (binary_logits, multilabel_logits, box_pred, token_logits)
        labels = (binary_label, multilabel_label, box_target, token_labels)
        super().update(**dict(zip(INPUT_NAMES, inputs + labels, strict=True)))

    def forward(self, *args: Tensor, **kwargs: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """Accumulate one batch and return the metrics of that batch alone (x100)."""
        kwargs |= dict(zip(INPUT_NAMES, args, strict=False))
        return self._scale(super().forward(**kwargs))

    def compute(self) -> dict[str, Tensor]:
        """`{name: x100 float64 scalar}`, the 12 in paper order then the extras (synced across ranks)."""
        return self._scale(super().compute())

    @staticmethod
    def _scale(values: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name: 100 * values[name] for name in ALL_METRIC_NAMES}
