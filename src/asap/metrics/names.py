"""Metric names: the 12 of every DGM4 table (paper order), the extras, and the paper's grouping."""

from __future__ import annotations

TYPE_NAMES = ("FS", "FA", "TS", "TA")  # multi-label classes: face swap/attribute, text swap/attribute

METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "Binary": ("AUC", "EER", "ACC"),
    "Multi-label": ("mAP", "CF1", "OF1"),
    "Image grounding": ("IoU_mean", "IoU50", "IoU75"),
    "Text grounding": ("Precision", "Recall", "F1"),
}
EXTRA_GROUPS: dict[str, tuple[str, ...]] = {
    "Binary": (),
    "Multi-label": (
        *(f"AP_{t}" for t in TYPE_NAMES),
        *(f"F1_{t}" for t in TYPE_NAMES),  # the paper's Figure 6
        "CP",
        "CR",
        "OP",
        "OR",
    ),
    "Image grounding": ("IoU_mean_boxed", "IoU50_boxed", "IoU75_boxed"),  # samples with a box only
    "Text grounding": (),
}

METRIC_NAMES: tuple[str, ...] = tuple(n for names in METRIC_GROUPS.values() for n in names)
EXTRA_METRIC_NAMES: tuple[str, ...] = tuple(n for names in EXTRA_GROUPS.values() for n in names)
ALL_METRIC_NAMES: tuple[str, ...] = METRIC_NAMES + EXTRA_METRIC_NAMES
LOWER_IS_BETTER: frozenset[str] = frozenset({"EER"})
