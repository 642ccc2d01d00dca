"""Presenting scores: a rich table grouped like the paper's tables, and a JSON object."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from rich.table import Table

from asap.metrics.names import EXTRA_GROUPS, LOWER_IS_BETTER, METRIC_GROUPS


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.2f}"


def grouped_metrics_table(values: Mapping[str, float], title: str = "DGM4 metrics (x100)") -> Table:
    """One section per paper group (Binary, Multi-label, Image grounding, Text grounding), extras dimmed."""
    table = Table(title=title, title_justify="left")
    table.add_column("group", style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for group, names in METRIC_GROUPS.items():
        extras = [n for n in EXTRA_GROUPS.get(group, ()) if n in values]
        for i, name in enumerate(names):
            arrow = " (lower is better)" if name in LOWER_IS_BETTER else ""
            table.add_row(group if i == 0 else "", name + arrow, _fmt(values.get(name)))
        for name in extras:
            table.add_row("", f"[dim]{name}[/dim]", f"[dim]{_fmt(values[name])}[/dim]")
        table.add_section()
    return table


def metrics_json(values: Mapping[str, float]) -> str:
    """One JSON object {name: value}; NaN (an undefined metric) becomes null."""
    return json.dumps({k: (None if math.isnan(v) else v) for k, v in values.items()}, indent=2)
