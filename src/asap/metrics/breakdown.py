"""Breakdowns: the 12 DGM4 metrics per slice of a prediction file (per manipulation type, image-side method, news
source, face size, modality sub-set), as researchers report them.

The groupings are data (conf/breakdown/default.yaml), not code: a grouping maps slice names to conditions on the
prediction file's per-row columns, all of which must hold (AND):

    fake_cls:                                  # grouping
      face_swap: {fake_cls: face_swap}         # slice: a value -> equality
      mixed_face: {fake_cls: [face_swap&text_swap, face_swap&text_attribute]}   # a list -> membership
    method:
      simswap: {image: {pattern: "(^|/)manipulation/simswap/"}}                 # a regex (re.search) on a string
    face_size:
      "<1%": {has_box: true, box_area: {range: [0.0, 0.01]}}                    # lo <= value < hi

Columns: every per-row array of the file (`fake_cls`, `image`, `index`, `ids`, `binary_label`), `fake_cls`
derived from `multilabel_label` where the file predates it, and `box_area` / `has_box` from `box_target`
(the edited face's w * h as a fraction of the image; 0 and false without a box).

Each slice is scored by `score_predictions` (the same code as the whole split). A metric the slice cannot define
(AUC on a one-class slice, mAP without a manipulated type, CF1 without every type) is NaN and shown as "–" with
its reason; a value that only a zero-division convention defines (token Recall without a manipulated token) is
kept and footnoted; an empty slice is listed with n = 0; slices under `min_samples` rows are flagged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asap.errors import BreakdownError
from asap.labels import IGNORE_INDEX
from asap.metrics.names import METRIC_NAMES

HEADLINE_METRICS = ("AUC", "ACC", "mAP", "IoU_mean", "F1")  # the figure's bars (ACC: AUC needs both classes)
DERIVED_COLUMNS = ("box_area", "has_box")


# ---------------------------------------------------------------------------------------------- specification
@dataclass(frozen=True)
class Condition:
    """One test on one column: "equals" (a scalar), "in" (a list), "pattern" (a regex) or "range" ([lo, hi))."""

    column: str
    kind: str
    value: Any

    def mask(self, values: np.ndarray) -> np.ndarray:
        """(N,) bool: the rows whose `values` pass."""
        if self.kind == "pattern":
            regex = re.compile(self.value)
            return np.fromiter((bool(regex.search(str(v))) for v in values), bool, len(values))
        if self.kind == "range":
            lo, hi = self.value
            return (values >= lo) & (values < hi)
        wanted = self.value if self.kind == "in" else [self.value]
        return np.isin(values, np.asarray(wanted))  # never cast to the column's dtype: it would cut long strings


@dataclass(frozen=True)
class SliceSpec:
    name: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Grouping:
    name: str
    slices: tuple[SliceSpec, ...]

    @property
    def columns(self) -> set[str]:
        return {c.column for s in self.slices for c in s.conditions}


def parse_groupings(spec: Mapping[str, Any]) -> list[Grouping]:
    """`{grouping: {slice: {column: condition}}}` (plain containers) -> Groupings; BreakdownError if malformed."""
    groupings = []
    for gname, slices in spec.items():
        if not isinstance(slices, Mapping) or not slices:
            raise BreakdownError(f"breakdown grouping {gname!r}: expected a mapping of slice names to conditions")
        parsed = []
        for sname, conditions in slices.items():
            where = f"breakdown grouping {gname!r}, slice {sname!r}"
            if not isinstance(conditions, Mapping) or not conditions:
                raise BreakdownError(f"{where}: expected a mapping {{column: condition}}, got {conditions!r}")
            parsed.append(SliceSpec(str(sname), tuple(_condition(where, c, v) for c, v in conditions.items())))
        groupings.append(Grouping(str(gname), tuple(parsed)))
    return groupings


def load_groupings(path: str | Path) -> tuple[list[Grouping], int]:
    """The groupings and `min_samples` of a conf/breakdown YAML file."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise BreakdownError(f"{path}: no such breakdown config")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("groupings"), Mapping):
        raise BreakdownError(f"{path}: expected a mapping with a 'groupings' mapping")
    return parse_groupings(cfg["groupings"]), int(cfg.get("min_samples", 0))


def _condition(where: str, column: str, value: Any) -> Condition:
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in ("in", "pattern", "range"):
            raise BreakdownError(f"{where}: column {column!r} takes one of in / pattern / range, got {dict(value)}")
        kind, arg = next(iter(value.items()))
        if kind == "range" and (not isinstance(arg, Sequence) or len(arg) != 2):
            raise BreakdownError(f"{where}: range of {column!r} must be [lo, hi], got {arg!r}")
        if kind == "pattern":
            try:
                re.compile(arg)
            except re.error as err:
                raise BreakdownError(f"{where}: pattern {arg!r} of {column!r} is not a regex ({err})") from err
        return Condition(column, kind, list(arg) if kind in ("in", "range") else arg)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return Condition(column, "in", list(value))
    return Condition(column, "equals", value)


# ---------------------------------------------------------------------------------------------- columns
def row_columns(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every per-row (N,) column a condition may test, derived ones included (see the module docstring)."""
    from asap.data.records import fake_cls_of
    from asap.errors import DGM4DataError

    n = len(arrays["binary_label"])
    columns = {k: np.asarray(v) for k, v in arrays.items() if np.ndim(v) == 1 and len(v) == n}
    columns = {k: v.astype(str) if v.dtype.kind == "S" else v for k, v in columns.items()}  # bytes -> str
    if "fake_cls" not in columns:  # files written before the record fields: the multi-label is one-to-one
        try:
            columns["fake_cls"] = np.asarray([fake_cls_of(r) for r in np.asarray(arrays["multilabel_label"], int)])
        except DGM4DataError:  # a label set no DGM4 record has (e.g. FS and FA): no fake_cls column
            pass
    box = np.asarray(arrays["box_target"], dtype=np.float64)  # (N, 4) cx, cy, w, h
    columns["box_area"] = box[:, 2] * box[:, 3]
    columns["has_box"] = columns["box_area"] > 0
    return columns


def missing_columns(grouping: Grouping, columns: Mapping[str, np.ndarray]) -> list[str]:
    return sorted(grouping.columns - set(columns))


def slice_mask(spec: SliceSpec, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N,) bool: the rows of one slice (every condition holds)."""
    mask = np.ones(len(next(iter(columns.values()))), dtype=bool)
    for condition in spec.conditions:
        mask &= condition.mask(columns[condition.column])
    return mask


# ---------------------------------------------------------------------------------------------- results
@dataclass
class SliceResult:
    name: str
    n: int
    values: dict[str, float]  # the 12 metrics (x100), NaN where undefined
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why it is "–"
    conventions: dict[str, str] = field(default_factory=dict)  # metric -> why its value is a convention
    small: bool = False  # fewer rows than `min_samples`


@dataclass
class GroupingResult:
    name: str
    slices: list[SliceResult]
    unmatched: int  # rows in no slice (e.g. manipulated images have no news source in their path)
    missing: list[str] = field(default_factory=list)  # columns the file lacks: the grouping was not computed


@dataclass
class Breakdown:
    split: str
    n: int
    overall: dict[str, float]
    groupings: list[GroupingResult]
    min_samples: int

    def grouping(self, name: str) -> GroupingResult:
        for g in self.groupings:
            if g.name == name:
                return g
        raise BreakdownError(f"no grouping {name!r}; known: {', '.join(g.name for g in self.groupings)}")


def select_rows(arrays: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of `mask` of every per-row array (all arrays are row-major with N rows)."""
    n = len(mask)
    return {k: np.asarray(v)[mask] for k, v in arrays.items() if np.ndim(v) >= 1 and len(v) == n}


def score_slice(name: str, arrays: Mapping[str, np.ndarray], min_samples: int = 0) -> SliceResult:
    """The 12 metrics of one slice's rows, with the reasons of every undefined or convention-only value."""
    from asap.metrics.predictions import score_predictions

    n = len(arrays["binary_label"])
    if n == 0:
        nan = {m: math.nan for m in METRIC_NAMES}
        return SliceResult(name, 0, nan, {m: "empty slice" for m in METRIC_NAMES}, small=min_samples > 0)
    scored = score_predictions(arrays, validate=False)
    values = {m: scored[m] for m in METRIC_NAMES}
    return SliceResult(
        name,
        n,
        values,
        undefined_reasons(arrays, values),
        convention_notes(arrays),
        small=n < min_samples,
    )


def undefined_reasons(arrays: Mapping[str, np.ndarray], values: Mapping[str, float]) -> dict[str, str]:
    """metric -> why it is NaN on these rows (see asap.metrics: the protocol's divisions by zero)."""
    binary = np.asarray(arrays["binary_label"])
    one_class = f"one class only (all {'fake' if binary.all() else 'real'})"
    reasons = {
        "AUC": one_class,
        "EER": one_class,
        "mAP": "no manipulated type in the slice",
        "OF1": "no manipulated type in the slice: OR = 0/0",
        "CF1": "a type (FS, FA, TS, TA) is absent from the slice: its recall, so CR, is undefined",
    }
    return {m: reasons.get(m, "undefined on this slice") for m, v in values.items() if math.isnan(v)}


def convention_notes(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """metric -> why its value rests on a zero-division convention only (kept, but footnoted)."""
    labels = np.asarray(arrays["token_labels"])  # (N, L)
    logits = np.asarray(arrays["token_logits"])  # (N, L, 2)
    real = labels != IGNORE_INDEX
    notes = {}
    types = np.asarray(arrays["multilabel_label"]).astype(bool)  # (N, 4)
    present = types.any(0)
    if present.any() and types[:, present].all():  # AP of a class every row has is 1 whatever the scores
        notes["mAP"] = "every row has each type present: AP = 100 whatever the scores (read OF1)"
    if not (labels == 1).any():
        notes["Recall"] = notes["F1"] = "no manipulated token in the slice: 0 by convention"
    if not ((logits[..., 1] > logits[..., 0]) & real).any():
        notes["Precision"] = "no token predicted manipulated: 0 by convention"
    return notes


def compute_breakdown(
    arrays: Mapping[str, np.ndarray], groupings: Sequence[Grouping], split: str = "test", min_samples: int = 0
) -> Breakdown:
    """Every grouping's slices scored; a grouping whose columns the file lacks is kept, marked `missing`."""
    from asap.metrics.predictions import score_predictions

    columns = row_columns(arrays)
    results = []
    for grouping in groupings:
        missing = missing_columns(grouping, columns)
        if missing:
            results.append(GroupingResult(grouping.name, [], 0, missing))
            continue
        covered = np.zeros(len(arrays["binary_label"]), dtype=bool)
        slices = []
        for spec in grouping.slices:
            mask = slice_mask(spec, columns)
            covered |= mask
            slices.append(score_slice(spec.name, select_rows(arrays, mask), min_samples))
        results.append(GroupingResult(grouping.name, slices, int((~covered).sum())))
    overall = score_predictions(arrays, validate=False)
    return Breakdown(split, len(arrays["binary_label"]), {m: overall[m] for m in METRIC_NAMES}, results, min_samples)


def grouping_json(result: GroupingResult) -> dict[str, dict[str, float | int | None]]:
    """`{slice: {metric: value (None where undefined), ..., "n": size}}` for one grouping."""
    return {
        s.name: {m: (None if math.isnan(v) else v) for m, v in s.values.items()} | {"n": s.n}
        for s in result.slices
    }
