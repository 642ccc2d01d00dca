"""The 12 DGM4 metrics exactly as the HAMMER protocol computes them (torchmetrics), and prediction files.

Binary (score = softmax(binary_logits)[:, 1]): AUC; EER, the root of 1 - x - TPR(x) with TPR interpolated
linearly over the ROC points; ACC of the argmax (a tie goes to real).
Multi-label [FS, FA, TS, TA] (raw logits, prediction = logit >= 0): mAP (non-interpolated AP per class);
OF1 (micro); CF1 = harmonic mean of macro P and macro R, Np taken as 1 where 0.
Image grounding: IoU per (predicted, target) pair over all samples, 1 where the target's x1 is 0 and every
predicted corner < 1e-4; IoU_mean, IoU50 (IoU > 0.5), IoU75 (IoU > 0.75).
Text grounding: micro Precision, Recall, F1 over all non-padding tokens of all samples.
All reported x100.

Values where the reference divides by zero or crashes (documented here and in each function):
- AUC, EER: NaN unless both classes are present (sklearn raises).
- AP of a class with no positive: NaN; mAP averages the classes that have one (the reference crashes).
- Recall of a class with no positive is NaN, so are its F1, CR and CF1 (as the reference's NumPy gives).
- OF1, CF1, per-class F1, token F1: 0 where P + R = 0 (the reference gives NaN or crashes).
- Token Precision / Recall: 0 where TP + FP / TP + FN is 0 (sklearn's default zero_division).
- IoU of two zero-area boxes not covered by the no-box rule: 0 (the reference gives NaN).
- Ties in the multi-label scores keep their input order (the reference's unstable sort leaves it open).
- Everything is NaN before any sample is seen.

Model outputs are processed in float32 like the reference (softmax, IoU); rates and means in float64.

`METRIC_NAMES` / `EXTRA_METRIC_NAMES` need no torch; the metric classes are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asap.metrics.names import (
    ALL_METRIC_NAMES,
    EXTRA_GROUPS,
    EXTRA_METRIC_NAMES,
    LOWER_IS_BETTER,
    METRIC_GROUPS,
    METRIC_NAMES,
    TYPE_NAMES,
)

if TYPE_CHECKING:
    from asap.metrics.binary import BinaryDetectionMetrics
    from asap.metrics.collection import DGM4Metrics
    from asap.metrics.grounding import BoxGroundingMetrics, TokenGroundingMetrics
    from asap.metrics.multilabel import MultiLabelMetrics

__all__ = [
    "ALL_METRIC_NAMES",
    "BinaryDetectionMetrics",
    "BoxGroundingMetrics",
    "DGM4Metrics",
    "EXTRA_GROUPS",
    "EXTRA_METRIC_NAMES",
    "LOWER_IS_BETTER",
    "METRIC_GROUPS",
    "METRIC_NAMES",
    "MultiLabelMetrics",
    "TYPE_NAMES",
    "TokenGroundingMetrics",
]

_LAZY = {
    "DGM4Metrics": "asap.metrics.collection",
    "BinaryDetectionMetrics": "asap.metrics.binary",
    "MultiLabelMetrics": "asap.metrics.multilabel",
    "BoxGroundingMetrics": "asap.metrics.grounding",
    "TokenGroundingMetrics": "asap.metrics.grounding",
}


def __getattr__(name: str) -> Any:
    """Import the metric classes (torch, torchmetrics, torchvision) only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
