"""Figures and console views: verdict figures (paper Figure 5), F1 per type (Figure 6), rich verdict panels."""

from asap.visualize.console import caption_text, print_verdict, verdict_panel
from asap.visualize.figures import (
    GroundTruth,
    plot_f1_per_type,
    save_verdict_figure,
    upsample_attention,
    verdict_figure,
)

__all__ = [
    "GroundTruth",
    "caption_text",
    "plot_f1_per_type",
    "print_verdict",
    "save_verdict_figure",
    "upsample_attention",
    "verdict_figure",
    "verdict_panel",
]
