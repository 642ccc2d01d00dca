"""The breakdown step of the train and eval jobs: per-slice metrics of the split just scored, printed, written
(breakdown_<split>.{csv,md,png}) and sent to W&B (a table and the figure; offline runs too)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from asap.metrics.breakdown import Breakdown, compute_breakdown, parse_groupings
from asap.metrics.names import METRIC_NAMES
from asap.reporting.breakdown import to_rich, write_breakdown
from asap.utils.console import console


def run_breakdown(
    cfg: DictConfig, arrays: Mapping[str, np.ndarray], output_dir: Path, split: str, loggers: Sequence[Logger] = ()
) -> dict[str, Path]:
    """Slice `arrays` by `cfg.breakdown.groupings` (nothing when the node is absent or `enabled: false`)."""
    node = cfg.get("breakdown")
    if not node or not node.get("enabled", True) or not arrays:
        return {}
    spec = OmegaConf.to_container(node.groupings, resolve=True)
    breakdown = compute_breakdown(arrays, parse_groupings(spec), split=split, min_samples=int(node.min_samples))
    paths = write_breakdown(breakdown, output_dir)
    for result in breakdown.groupings:
        console.print(to_rich(result, breakdown))
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            log_to_wandb(logger, breakdown, paths["png"])
    console.print(f"breakdown of {split} written: " + ", ".join(str(p) for p in paths.values()), markup=False)
    return paths


def wandb_rows(breakdown: Breakdown) -> tuple[list[str], list[list[object]]]:
    """Columns and rows of the W&B table: grouping, slice, n, the 12 metrics (None where undefined)."""
    columns = ["grouping", "slice", "n", *METRIC_NAMES]
    rows: list[list[object]] = [["all", "all", breakdown.n, *(breakdown.overall[m] for m in METRIC_NAMES)]]
    for result in breakdown.groupings:
        for s in result.slices:
            values = [None if math.isnan(s.values[m]) else s.values[m] for m in METRIC_NAMES]
            rows.append([result.name, s.name, s.n, *values])
    return columns, rows


def log_to_wandb(logger: WandbLogger, breakdown: Breakdown, figure: Path) -> None:
    columns, rows = wandb_rows(breakdown)
    logger.log_table(key=f"breakdown/{breakdown.split}", columns=columns, data=rows)
    logger.log_image(key=f"breakdown/{breakdown.split}_figure", images=[str(figure)])
