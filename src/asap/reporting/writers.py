"""Render a ResultsTable: rich (console), Markdown, LaTeX, CSV and a PNG plot."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from rich.table import Table

from asap.metrics import METRIC_NAMES
from asap.reporting.results import ResultsTable

GROUPS = (("Binary Cls", 3), ("Multi-Label", 3), ("Image Grounding", 3), ("Text Grounding", 3))


def rows(results: ResultsTable) -> list[tuple[str, str, list[str]]]:
    """(source, row name, 12 cells): ours first, each followed by the paper's row where there is one."""
    out = []
    for variant in results.variants:
        seeds = f" (n={len(variant.runs)})" if len(variant.runs) > 1 else ""
        out.append(("ours", variant.name + seeds, [results.cell(variant, m) for m in METRIC_NAMES]))
        paper = results.paper.get(variant.paper_row or "")
        if paper:
            out.append(("paper", variant.paper_row, [f"{paper[m]:.2f}" if m in paper else "-" for m in METRIC_NAMES]))
    return out


def to_rich(results: ResultsTable) -> Table:
    title = f"{results.sweep_name}" + (f" — paper Table {results.table}" if results.table else "")
    table = Table(title=title, show_lines=False)
    table.add_column("source")
    table.add_column("run")
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    for source, name, cells in rows(results):
        style = "dim" if source == "paper" else None
        table.add_row(source, name, *cells, style=style)
    return table


SLICE_GROUPING = "fake_cls"  # the per-slice table of a sweep: per manipulation type, as the DGM4 papers report


def slice_rows(results: ResultsTable, grouping: str = SLICE_GROUPING) -> list[tuple[str, str, str, list[str]]]:
    """(run, slice, n, 12 cells "mean ± std" over seeds): every variant's slices of `grouping`."""
    out = []
    for variant in results.variants:
        for name in results.slice_names(grouping):
            key = (grouping, name)
            sizes = sorted({int(run[key]["n"]) for run in variant.slices if key in run})
            if not sizes:
                continue
            n = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
            out.append((variant.name, name, n, [results.slice_cell(variant, key, m) for m in METRIC_NAMES]))
    return out


def to_rich_slices(results: ResultsTable, grouping: str = SLICE_GROUPING) -> Table | None:
    """The per-slice table beside the main one (None when no job wrote a breakdown)."""
    rows = slice_rows(results, grouping)
    if not rows:
        return None
    table = Table(title=f"{results.sweep_name} by {grouping} (test, mean ± std over seeds; – undefined)")
    for name in ("run", "slice", "n"):
        table.add_column(name, justify="right" if name == "n" else "left")
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    previous = None
    for run, name, n, cells in rows:
        table.add_row(run if run != previous else "", name, n, *cells, end_section=False)
        previous = run
    return table


def slices_markdown(results: ResultsTable, grouping: str = SLICE_GROUPING) -> str:
    rows = slice_rows(results, grouping)
    if not rows:
        return ""
    header = "| run | slice | n | " + " | ".join(METRIC_NAMES) + " |"
    rule = "|---|---|---:|" + "---:|" * len(METRIC_NAMES)
    lines = [
        f"## {results.sweep_name} by {grouping}",
        "",
        "Test split, mean ± std over seeds; – = undefined on the slice (e.g. AUC on a one-class slice: see each "
        "job's breakdown_test.md for the reasons).",
        "",
        header,
        rule,
    ]
    lines += [f"| {run} | {name} | {n} | " + " | ".join(cells) + " |" for run, name, n, cells in rows]
    return "\n".join(lines) + "\n"


def write_slices_csv(results: ResultsTable, path: Path, grouping: str = SLICE_GROUPING) -> None:
    """run, slice, n_seeds, <metric>_mean, <metric>_std (empty where undefined)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "slice", "n", "n_seeds", *(f"{m}_mean" for m in METRIC_NAMES), *(f"{m}_std" for m in METRIC_NAMES)])
        for variant in results.variants:
            for name in results.slice_names(grouping):
                key = (grouping, name)
                runs = [run[key] for run in variant.slices if key in run]
                if not runs:
                    continue
                values = [variant.slice_values(key, m) for m in METRIC_NAMES]
                means = [sum(v) / len(v) if v else None for v in values]
                stds = [statistics.stdev(v) if len(v) > 1 else None for v in values]
                writer.writerow([variant.name, name, int(runs[0]["n"]), len(runs), *_fmt(means), *_fmt(stds)])


def to_markdown(results: ResultsTable) -> str:
    header = "| source | run | " + " | ".join(METRIC_NAMES) + " |"
    rule = "|---|---|" + "---:|" * len(METRIC_NAMES)
    lines = [f"## {results.sweep_name}" + (f" (paper Table {results.table})" if results.table else ""), "", header, rule]
    lines += [f"| {s} | {n} | " + " | ".join(c) + " |" for s, n, c in rows(results)]
    by_slice = slices_markdown(results)
    return "\n".join(lines) + "\n" + ("\n" + by_slice if by_slice else "")


def to_latex(results: ResultsTable) -> str:
    groups = " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{g}}}" for g, n in GROUPS)
    names = " & ".join(m.replace("_", r"\_") for m in METRIC_NAMES)
    body = []
    for source, name, cells in rows(results):
        label = name.replace("&", r"\&").replace("_", r"\_")
        cells = [c.replace("±", r"$\pm$") for c in cells]
        body.append(f"{'(paper) ' if source == 'paper' else ''}{label} & " + " & ".join(cells) + r" \\")
    return "\n".join(
        [
            r"\begin{tabular}{l" + "r" * len(METRIC_NAMES) + "}",
            r"\toprule",
            f" & {groups} \\\\",
            f"Method & {names} \\\\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            "",
        ]
    )


def write_csv(results: ResultsTable, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "run", "n_seeds", *(f"{m}_mean" for m in METRIC_NAMES), *(f"{m}_std" for m in METRIC_NAMES)])
        for v in results.variants:
            means = [v.mean(m) for m in METRIC_NAMES]
            stds = [v.std(m) for m in METRIC_NAMES]
            writer.writerow(["ours", v.name, len(v.runs), *_fmt(means), *_fmt(stds)])
            paper = results.paper.get(v.paper_row or "")
            if paper:
                writer.writerow(["paper", v.paper_row, "", *_fmt([paper.get(m) for m in METRIC_NAMES]), *([""] * 12)])


def _fmt(values: list[float | None]) -> list[str]:
    return ["" if v is None else f"{v:.4f}" for v in values]


def plot(results: ResultsTable, path: Path) -> None:
    """One panel per metric: our variants as bars (± std over seeds), the paper's values as black ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 4, figsize=(16, 9), constrained_layout=True)
    names = [v.name for v in results.variants]
    x = range(len(names))
    for ax, metric in zip(axes.flat, METRIC_NAMES, strict=True):
        means = [v.mean(metric) or 0.0 for v in results.variants]
        stds = [v.std(metric) or 0.0 for v in results.variants]
        ax.bar(x, means, yerr=stds, color="tab:blue", alpha=0.8, capsize=3, label="ours")
        paper = [results.paper.get(v.paper_row or "", {}).get(metric) for v in results.variants]
        px = [i for i, p in zip(x, paper, strict=True) if p is not None]
        if px:
            ax.scatter(px, [p for p in paper if p is not None], marker="_", s=400, color="black", label="paper")
        ax.set_title(metric)
        ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(results.sweep_name + (f" (paper Table {results.table})" if results.table else ""))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: ResultsTable, out_dir: Path) -> dict[str, Path]:
    """results.{md,tex,csv,png} in `out_dir` (and results_by_fake_cls.csv when the jobs wrote breakdowns)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"results.{k}" for k in ("md", "tex", "csv", "png")}
    if slice_rows(results):
        paths["slices_csv"] = out_dir / f"results_by_{SLICE_GROUPING}.csv"
        write_slices_csv(results, paths["slices_csv"])
    paths["md"].write_text(to_markdown(results))
    paths["tex"].write_text(to_latex(results))
    write_csv(results, paths["csv"])
    plot(results, paths["png"])
    return paths
