"""Render a Breakdown (asap.metrics.breakdown): Markdown and rich tables with footnotes, CSV, and one figure."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from rich.table import Table
from rich.text import Text

from asap.metrics.breakdown import HEADLINE_METRICS, Breakdown, GroupingResult
from asap.metrics.names import METRIC_NAMES

UNDEFINED = "–"
SMALL_NOTE = "fewer than {k} samples: the values are noisy"


def _cell(value: float, note: str | None, footnotes: list[str]) -> str:
    return _mark(UNDEFINED if math.isnan(value) else f"{value:.2f}", note, footnotes)


def _mark(text: str, note: str | None, footnotes: list[str]) -> str:
    """`text (k)`, k the number of `note` in `footnotes` (added there on first use)."""
    if note is None:
        return text
    if note not in footnotes:
        footnotes.append(note)
    return f"{text} ({footnotes.index(note) + 1})"


def grouping_rows(result: GroupingResult, breakdown: Breakdown) -> tuple[list[list[str]], list[str]]:
    """Rows [slice, n, 12 cells] ("all" first, the reference) and the numbered footnotes their cells cite."""
    footnotes: list[str] = []
    rows = [["all", str(breakdown.n), *(f"{breakdown.overall[m]:.2f}" for m in METRIC_NAMES)]]
    for s in result.slices:
        n = _mark(str(s.n), SMALL_NOTE.format(k=breakdown.min_samples) if s.small else None, footnotes)
        cells = [_cell(s.values[m], s.undefined.get(m) or s.conventions.get(m), footnotes) for m in METRIC_NAMES]
        rows.append([s.name, n, *cells])
    return rows, footnotes


def grouping_caption(result: GroupingResult) -> str:
    """What a grouping's table does not show: the rows in no slice, or why it was not computed."""
    if result.missing:
        return (
            f"not computed: the prediction file has no {', '.join(result.missing)} array (written before the "
            "record fields were saved; evaluate the checkpoint again to get them)"
        )
    return f"{result.unmatched} rows in no slice of this grouping" if result.unmatched else ""


def to_markdown(breakdown: Breakdown) -> str:
    """One section per grouping: a table of the 12 metrics (x100) per slice, then its footnotes."""
    lines = [
        f"# Breakdown of the {breakdown.split} split ({breakdown.n} samples)",
        "",
        f"The 12 DGM4 metrics (x100) per slice; \"all\" is the whole split. {UNDEFINED} = undefined on the slice "
        "(reason in the footnote).",
    ]
    header = "| slice | n | " + " | ".join(METRIC_NAMES) + " |"
    rule = "|---|---:|" + "---:|" * len(METRIC_NAMES)
    for result in breakdown.groupings:
        lines += ["", f"## {result.name}", ""]
        caption = grouping_caption(result)
        if result.missing:
            lines.append(caption)
            continue
        rows, footnotes = grouping_rows(result, breakdown)
        lines += [header, rule, *("| " + " | ".join(r) + " |" for r in rows)]
        notes = ([caption] if caption else []) + [f"({i}) {note}" for i, note in enumerate(footnotes, 1)]
        if notes:
            lines += ["", *(f"{note}  " for note in notes)]
    return "\n".join(lines) + "\n"


def to_rich(result: GroupingResult, breakdown: Breakdown) -> Table | Text:
    """One grouping as a rich table (footnotes in its caption); a line saying why when it was not computed."""
    if result.missing:
        return Text(f"{breakdown.split} by {result.name}: {grouping_caption(result)}")
    table = Table(title=f"{breakdown.split} by {result.name} (x100)", title_justify="left", caption_justify="left")
    table.add_column("slice")
    table.add_column("n", justify="right")
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    caption = grouping_caption(result)
    rows, footnotes = grouping_rows(result, breakdown)
    for i, row in enumerate(rows):
        table.add_row(*row, style="bold" if i == 0 else None, end_section=i == 0)
    notes = ([caption] if caption else []) + [f"({i}) {note}" for i, note in enumerate(footnotes, 1)]
    table.caption = "\n".join(notes) or None
    return table


def write_csv(breakdown: Breakdown, path: Path) -> None:
    """grouping, slice, n, the 12 metrics (full precision, empty where undefined), notes."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["grouping", "slice", "n", *METRIC_NAMES, "notes"])
        writer.writerow(["all", "all", breakdown.n, *(_num(breakdown.overall[m]) for m in METRIC_NAMES), ""])
        for result in breakdown.groupings:
            if result.missing:
                writer.writerow([result.name, "", "", *([""] * len(METRIC_NAMES)), grouping_caption(result)])
            for s in result.slices:
                notes = [f"{m}: {why}" for m, why in (s.undefined | s.conventions).items()]
                if s.small:
                    notes.insert(0, SMALL_NOTE.format(k=breakdown.min_samples))
                writer.writerow([result.name, s.name, s.n, *(_num(s.values[m]) for m in METRIC_NAMES), "; ".join(notes)])


def _num(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def plot(breakdown: Breakdown, path: Path, metrics: tuple[str, ...] = HEADLINE_METRICS) -> Path:
    """One panel per grouping: the headline metrics per slice as bars, the all-samples values as dashed lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [g for g in breakdown.groupings if not g.missing]
    cols = min(3, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(6.0 * cols, 4.4 * rows), layout="constrained")  # no pyplot state
    FigureCanvasAgg(fig)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    width = 0.8 / len(metrics)
    for k, result in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        for j, metric in enumerate(metrics):
            colour = colours[j % len(colours)]
            xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(result.slices))]
            values = [s.values[metric] for s in result.slices]
            ax.bar(xs, [0.0 if math.isnan(v) else v for v in values], width, color=colour, label=metric)
            for x, v in zip(xs, values, strict=True):
                if math.isnan(v):
                    ax.text(x, 1.0, UNDEFINED, ha="center", va="bottom", fontsize=8, color=colour)
            ax.axhline(breakdown.overall[metric], color=colour, linestyle="--", linewidth=1.0)
        labels = [f"{s.name}\nn={s.n}" + ("*" if s.small else "") for s in result.slices]
        ax.set_xticks(range(len(result.slices)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_ylim(0, 105)
        note = f" ({result.unmatched} rows in no slice)" if result.unmatched else ""
        ax.set_title(f"by {result.name}{note}", fontsize=9)
        ax.set_ylabel("x100", fontsize=8)
        if k == 0:
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(metrics), fontsize=8)
    fig.suptitle(
        f"{breakdown.split}: {', '.join(metrics)} per slice; dashed: all {breakdown.n} samples; "
        f"{UNDEFINED}: undefined; *: fewer than {breakdown.min_samples} samples",
        fontsize=9,
    )
    fig.savefig(path, dpi=110)
    return path


def write_breakdown(breakdown: Breakdown, out_dir: Path) -> dict[str, Path]:
    """breakdown_<split>.{csv,md,png} in `out_dir`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"breakdown_{breakdown.split}.{k}" for k in ("csv", "md", "png")}
    write_csv(breakdown, paths["csv"])
    paths["md"].write_text(to_markdown(breakdown))
    plot(breakdown, paths["png"])
    return paths
