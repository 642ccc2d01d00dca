"""Collect the jobs of a sweep into the paper's table: ours (mean ± std over seeds) beside the paper's numbers."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from asap.metrics import METRIC_NAMES

# sweep preset -> (paper table, {override value: paper row})
SWEEP_TABLES: dict[str, tuple[int, dict[str, str]]] = {
    "table2_components": (
        2,
        {
            "ablation=baseline": "baseline",
            "ablation=lma": "+LMA",
            "ablation=lma_mgca": "+LMA+MGCA",
            "ablation=full": "+LMA+MGCA+PMM",
        },
    ),
    "table3_aux_text": (
        3,
        {
            "ablation=caption_only": "ASAP w/ caption",
            "ablation=explanation_only": "ASAP w/ explanation",
            "ablation=full": "ASAP w/ caption & explanation",
        },
    ),
    "table4_hnp": (4, {"ablation=no_hnp": "ASAP w/o HNP", "ablation=full": "ASAP w/ HNP"}),
    "table5_text_modality": (5, {"ablation=text_only": "text only", "ablation=full": "multimodal"}),
    "table6_image_modality": (6, {"ablation=image_only": "image only", "ablation=full": "multimodal"}),
    "table8_delta": (8, {f"model.delta_init={v}": f"delta={v}" for v in ("0.1", "0.5", "1.0")}),
    "table9_alpha": (9, {f"loss.alpha={v}": f"alpha={v}" for v in ("0.1", "0.5", "1.0")}),
    "table10_lambda": (10, {"loss.lambda_=0.01": "lambda=0.01", "loss.lambda_=0.05": "lambda=0.05", "loss.lambda_=0.1": "lambda=0.10"}),
}

# overrides that do not define a variant of a sweep (seeds are averaged over)
_NOT_A_VARIANT = ("seed=", "sweep=", "hydra.", "logger", "trainer.devices", "paths.", "data.root", "data.num_workers")


@dataclass
class Variant:
    """One row of a results table: the jobs that differ only in seed."""

    name: str
    runs: list[dict[str, float]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    paper_row: str | None = None
    # per run: (grouping, slice) -> {metric: value, "n": size}, from the job's breakdown_test.csv (if any)
    slices: list[dict[tuple[str, str], dict[str, float]]] = field(default_factory=list)

    def mean(self, metric: str) -> float | None:
        values = [r[metric] for r in self.runs if r.get(metric) is not None and not math.isnan(r[metric])]
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        values = [r[metric] for r in self.runs if r.get(metric) is not None and not math.isnan(r[metric])]
        return statistics.stdev(values) if len(values) > 1 else None

    def slice_values(self, key: tuple[str, str], metric: str) -> list[float]:
        """The defined values of `metric` on slice `key` = (grouping, slice), one per run that has it."""
        values = [run[key].get(metric, math.nan) for run in self.slices if key in run]
        return [v for v in values if not math.isnan(v)]


@dataclass
class ResultsTable:
    sweep_name: str
    table: int | None
    variants: list[Variant]
    paper: dict[str, dict[str, float]]  # paper row -> metrics

    def cell(self, variant: Variant, metric: str) -> str:
        mean, std = variant.mean(metric), variant.std(metric)
        if mean is None:
            return "-"
        return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"

    def slice_names(self, grouping: str) -> list[str]:
        """The slices of `grouping` found in any run's breakdown, in their order there."""
        keys = (k for v in self.variants for run in v.slices for k in run)
        return list(dict.fromkeys(name for g, name in keys if g == grouping))

    def slice_cell(self, variant: Variant, key: tuple[str, str], metric: str) -> str:
        """mean ± std over the runs where the metric is defined on the slice; "–" where it is nowhere."""
        values = variant.slice_values(key, metric)
        if not values:
            return "–"
        mean = statistics.fmean(values)
        return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def read_breakdown_csv(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """breakdown_<split>.csv -> {(grouping, slice): {metric: value (NaN where undefined), "n": size}}; {} if absent."""
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("slice") or not row.get("n"):
                continue  # a grouping that was not computed
            values = {m: float(row[m]) if row.get(m) else math.nan for m in METRIC_NAMES}
            out[(row["grouping"], row["slice"])] = values | {"n": float(row["n"])}
    return out


def load_paper_tables() -> dict[int, dict[str, dict[str, float]]]:
    """The paper's numbers (`paper_tables.csv`, shipped with the package): table -> row -> metric -> value."""
    tables: dict[int, dict[str, dict[str, float]]] = defaultdict(dict)
    text = resources.files("asap.reporting").joinpath("paper_tables.csv").read_text()
    for row in csv.DictReader(text.splitlines()):
        values = {m: float(row[m]) for m in METRIC_NAMES if row.get(m)}
        tables[int(row["table"])][row["row"]] = values
    return dict(tables)


def find_job_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's `metrics.json` under a multirun folder (sorted by job folder)."""
    paths = sorted(sweep_dir.rglob("metrics.json"))
    if not paths:
        raise FileNotFoundError(f"no metrics.json under {sweep_dir}: is it a multirun folder of src/train.py?")
    jobs = []
    for path in paths:
        try:
            job = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        job["_path"] = str(path)
        jobs.append(job)
    return jobs


def variant_key(overrides: list[str]) -> str:
    kept = [o for o in overrides if not o.startswith(_NOT_A_VARIANT)]
    return ",".join(sorted(kept)) or "default"


def build_results_table(sweep_dir: Path, sweep_name: str | None = None) -> ResultsTable:
    """Group the sweep's jobs by variant (everything but the seed) and attach the paper's rows."""
    jobs = find_job_results(sweep_dir)
    sweep_name = sweep_name or next((j.get("sweep_name") for j in jobs if j.get("sweep_name")), "adhoc")
    table_no, row_map = SWEEP_TABLES.get(sweep_name, (None, {}))
    common = _common_overrides(jobs)
    variants: dict[str, Variant] = {}
    for job in jobs:
        overrides = job.get("overrides", [])
        key = variant_key(overrides)
        # named by what differs between the jobs (not the settings every job shares, e.g. data sizes)
        name = variant_key([o for o in overrides if o not in common])
        name = key if name == "default" else name
        variant = variants.setdefault(key, Variant(name=name, paper_row=_paper_row(key, row_map)))
        variant.runs.append({k: float(v) for k, v in job.get("test", {}).items()})
        variant.seeds.append(int(job.get("seed", 0)))
        variant.slices.append(read_breakdown_csv(Path(job["_path"]).parent / "breakdown_test.csv"))
    paper = load_paper_tables().get(table_no, {}) if table_no else {}
    return ResultsTable(sweep_name=sweep_name, table=table_no, variants=list(variants.values()), paper=paper)


def _common_overrides(jobs: list[dict[str, Any]]) -> set[str]:
    """Overrides every job of a sweep has (none when there is a single job)."""
    if len(jobs) < 2:
        return set()
    return set.intersection(*(set(job.get("overrides", [])) for job in jobs))


def _paper_row(key: str, row_map: dict[str, str]) -> str | None:
    for override, row in row_map.items():
        if override in key.split(","):
            return row
    return None
