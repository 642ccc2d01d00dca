"""Rich console output: the config tree and metric tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

console = Console()

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
