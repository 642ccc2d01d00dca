"""Rich console output: the one Console of the project, the config tree and metric tables.

Written to a terminal, the console is as wide as the terminal. Written anywhere else (`| tee`, a SLURM log, CI,
a captured test), rich would cut every line to 80 columns; instead each `print` gets the width its renderables
need (up to `MAX_WIDTH`), so a table shows all its columns and a path is never shortened with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

MAX_WIDTH = 1000  # columns, off a terminal; a renderable that fills any width (a rule) gets `FILL_WIDTH`
FILL_WIDTH = 120


class FullWidthConsole(Console):
    """A Console that, off a terminal, prints each call at the natural width of what it prints."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if self.is_terminal or not objects or kwargs.get("width") is not None:
            super().print(*objects, **kwargs)
            return
        saved = self._width  # rich caps a print's width at the console's: widen the console for this call
        self.width = self.natural_width(*objects)
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = saved

    def natural_width(self, *objects: Any) -> int:
        """The columns `objects` need without wrapping (at least the console's own width)."""
        options = self.options.update(max_width=MAX_WIDTH)
        measured = [Measurement.get(self, options, obj) for obj in objects]
        # what fills any width wraps at FILL_WIDTH, but never inside a word (a path)
        need = max(max(FILL_WIDTH, m.minimum) if m.maximum >= MAX_WIDTH else m.maximum for m in measured)
        return max(self.width, need)


console = FullWidthConsole()

CONFIG_PRINT_ORDER = ("data", "model", "loss", "ablation", "optim", "callbacks", "logger", "trainer", "paths")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None, order: Sequence[str] = CONFIG_PRINT_ORDER) -> None:
    """Print the resolved config as a rich tree (and save it as text next to the run)."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in order if f in cfg] + [f for f in cfg if f not in order]
    for field in fields:
        branch = tree.add(str(field), style="bold", guide_style="dim")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    console.print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with save_to.open("w") as f:
            Console(file=f, width=120).print(tree)


def metrics_table(title: str, columns: Mapping[str, Mapping[str, float]], names: Sequence[str]) -> Table:
    """A table with one row per metric name and one column per source (e.g. {"val": {...}, "test": {...}})."""
    table = Table(title=title)
    table.add_column("metric")
    for col in columns:
        table.add_column(col, justify="right")
    for name in names:
        cells = [columns[c].get(name) for c in columns]
        table.add_row(name, *("-" if v is None else f"{v:.2f}" for v in cells))
    return table
