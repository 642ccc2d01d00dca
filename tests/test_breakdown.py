"""Breakdowns: each slice equals a direct re-computation on its rows, groupings from config, undefined values
marked with their reason, old prediction files, and `score.py --by` (in-process, as the CLI runs)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from asap.errors import BreakdownError, PredictionFileError
from asap.metrics import METRIC_NAMES
from asap.metrics.breakdown import compute_breakdown, load_groupings, parse_groupings
from asap.metrics.predictions import (
    load_predictions,
    save_predictions,
    score_predictions,
    synthetic_predictions,
)
from asap.reporting.breakdown import to_markdown, write_breakdown
from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "conf" / "breakdown" / "default.yaml"
SOURCES = ("guardian", "usa_today", "washington_post", "bbc")
METHODS = ("infoswap", "simswap", "StyleCLIP", "HFGI")


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return synthetic_predictions(360, num_tokens=12, seed=5, record_fields=True)


@pytest.fixture(scope="module")
def breakdown(arrays: dict[str, np.ndarray]):  # noqa: ANN201
    groupings, min_samples = load_groupings(DEFAULT)
    return compute_breakdown(arrays, groupings, split="test", min_samples=min_samples)


def expected_rows(arrays: dict[str, np.ndarray], grouping: str, name: str) -> np.ndarray:
    """The rows of a slice, found independently of the config's conditions."""
    fake_cls, image = arrays["fake_cls"], arrays["image"]
    area = arrays["box_target"][:, 2].astype(np.float64) * arrays["box_target"][:, 3]
    if grouping == "fake_cls":
        return fake_cls == name
    if grouping == "method":
        return np.array([f"/manipulation/{name}/" in p for p in image])
    if grouping == "source":
        return np.array([f"/origin/{name}/" in p for p in image])
    if grouping == "modality":
        kinds = ("face_swap", "face_attribute") if name == "image_only" else ("text_swap", "text_attribute")
        return np.isin(fake_cls, ("orig", *kinds))
    lo, hi = {"<1%": (0, 0.01), "1-3%": (0.01, 0.03), "3-10%": (0.03, 0.1), ">=10%": (0.1, 1.01)}[name]
    return (area > 0) & (area >= lo) & (area < hi)


def test_every_slice_equals_a_direct_recomputation(arrays: dict[str, np.ndarray], breakdown) -> None:  # noqa: ANN001
    assert [g.name for g in breakdown.groupings] == ["fake_cls", "method", "source", "face_size", "modality"]
    for grouping in breakdown.groupings:
        assert grouping.slices, grouping.name
        covered = np.zeros(len(arrays["ids"]), dtype=bool)
        for s in grouping.slices:
            rows = expected_rows(arrays, grouping.name, s.name)
            covered |= rows
            assert s.n == rows.sum(), (grouping.name, s.name)
            if s.n == 0:
                assert all(math.isnan(v) for v in s.values.values())
                continue
            direct = score_predictions({k: v[rows] for k, v in arrays.items()})
            for m in METRIC_NAMES:
                assert (math.isnan(s.values[m]) and math.isnan(direct[m])) or s.values[m] == pytest.approx(
                    direct[m], abs=1e-6
                ), (grouping.name, s.name, m)
        assert grouping.unmatched == (~covered).sum()
    assert breakdown.overall == pytest.approx({m: score_predictions(arrays)[m] for m in METRIC_NAMES}, nan_ok=True)


def test_sources_and_methods_split_the_records_by_image_path(breakdown) -> None:  # noqa: ANN001
    method, source = breakdown.grouping("method"), breakdown.grouping("source")
    assert [s.name for s in method.slices] == list(METHODS) and [s.name for s in source.slices] == list(SOURCES)
    # every record's image is either an edited face (a method folder) or an original (a news source)
    assert sum(s.n for s in method.slices) + sum(s.n for s in source.slices) == breakdown.n


def test_one_class_and_missing_type_slices_are_marked_with_the_reason(breakdown) -> None:  # noqa: ANN001
    orig = next(s for s in breakdown.grouping("fake_cls").slices if s.name == "orig")
    assert math.isnan(orig.values["AUC"]) and orig.undefined["AUC"] == "one class only (all real)"
    assert orig.undefined["mAP"] == "no manipulated type in the slice"
    assert "no manipulated token" in orig.conventions["Recall"]
    swap = next(s for s in breakdown.grouping("fake_cls").slices if s.name == "face_swap")
    assert swap.undefined["AUC"] == "one class only (all fake)" and "absent" in swap.undefined["CF1"]
    assert not math.isnan(swap.values["ACC"]) and "ACC" not in swap.undefined
    assert swap.values["mAP"] == pytest.approx(100.0) and "AP = 100 whatever the scores" in swap.conventions["mAP"]
    assert "mAP" not in next(s for s in breakdown.grouping("modality").slices if s.name == "text_only").conventions
    markdown = to_markdown(breakdown)
    section = markdown.split("## fake_cls")[1].split("## method")[0]
    orig_row = next(line for line in section.splitlines() if line.startswith("| orig |"))
    note = re.search(r"– \((\d+)\)", orig_row).group(1)
    assert f"({note}) one class only (all real)" in section


def test_empty_and_small_slices_are_listed_not_dropped(arrays: dict[str, np.ndarray]) -> None:
    spec = {"g": {"none": {"fake_cls": "face_swap", "image": {"pattern": "/origin/"}}, "bbc": {"image": {"pattern": "/origin/bbc/"}}}}
    result = compute_breakdown(arrays, parse_groupings(spec), min_samples=1000).grouping("g")
    none, bbc = result.slices
    assert none.n == 0 and set(none.undefined.values()) == {"empty slice"}
    assert bbc.n > 0 and bbc.small
    assert "| none | 0 (1) |" in to_markdown(compute_breakdown(arrays, parse_groupings(spec), min_samples=1000))


def test_byte_string_fields_slice_like_text(arrays: dict[str, np.ndarray]) -> None:
    as_bytes = arrays | {k: arrays[k].astype("S") for k in ("fake_cls", "image")}
    groupings, _ = load_groupings(DEFAULT)
    expected = [[s.n for s in g.slices] for g in compute_breakdown(arrays, groupings).groupings]
    assert [[s.n for s in g.slices] for g in compute_breakdown(as_bytes, groupings).groupings] == expected


def test_user_groupings_from_config(arrays: dict[str, np.ndarray]) -> None:
    spec = {
        "caught": {"fake": {"binary_label": 1}, "real": {"binary_label": [0]}},
        "box": {"big": {"box_area": {"range": [0.05, 2.0]}}},
    }
    result = compute_breakdown(arrays, parse_groupings(spec))
    fake, real = result.grouping("caught").slices
    assert fake.n == arrays["binary_label"].sum() and fake.n + real.n == len(arrays["ids"])
    area = arrays["box_target"][:, 2].astype(np.float64) * arrays["box_target"][:, 3]
    assert result.grouping("box").slices[0].n == (area >= 0.05).sum()


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"g": []}, "grouping 'g'"),
        ({"g": {"s": "orig"}}, "slice 's'"),
        ({"g": {"s": {"image": {"regex": "x"}}}}, "in / pattern / range"),
        ({"g": {"s": {"image": {"pattern": "("}}}}, "not a regex"),
        ({"g": {"s": {"box_area": {"range": [0.1]}}}}, r"\[lo, hi\]"),
    ],
)
def test_malformed_groupings_name_the_grouping_and_slice(spec: dict, message: str) -> None:
    with pytest.raises(BreakdownError, match=message):
        parse_groupings(spec)


def test_old_prediction_files_load_and_slice_by_what_they_hold(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    old = {k: v for k, v in arrays.items() if k not in ("index", "fake_cls", "image")}
    loaded = load_predictions(save_predictions(tmp_path / "predictions_test.npz", **old))
    assert set(loaded) == set(old)
    groupings, _ = load_groupings(DEFAULT)
    result = compute_breakdown(loaded, groupings)
    assert result.grouping("method").missing == ["image"] and result.grouping("source").missing == ["image"]
    fake_cls = result.grouping("fake_cls")  # derived from multilabel_label: the same as the stored one
    expected = compute_breakdown(arrays, groupings).grouping("fake_cls")
    assert [s.n for s in fake_cls.slices] == [s.n for s in expected.slices]
    assert "not computed: the prediction file has no image array" in to_markdown(result)


def test_new_arrays_are_checked(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(PredictionFileError, match="array 'fake_cls' has 3 samples"):
        save_predictions(tmp_path / "p.npz", **(arrays | {"fake_cls": np.asarray(["orig"] * 3)}))
    with pytest.raises(PredictionFileError, match="array 'index' has dtype"):
        save_predictions(tmp_path / "p.npz", **(arrays | {"index": np.asarray(["a"] * len(arrays["ids"]))}))


def test_files_csv_md_png(tmp_path: Path, breakdown) -> None:  # noqa: ANN001
    paths = write_breakdown(breakdown, tmp_path)
    assert [p.name for p in paths.values()] == ["breakdown_test.csv", "breakdown_test.md", "breakdown_test.png"]
    rows = list(csv.DictReader(paths["csv"].open()))
    assert rows[0]["grouping"] == "all" and int(rows[0]["n"]) == breakdown.n
    orig = next(r for r in rows if r["grouping"] == "fake_cls" and r["slice"] == "orig")
    assert orig["AUC"] == "" and "AUC: one class only" in orig["notes"]
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------------------- score.py --by
@pytest.fixture(scope="module")
def score_main():  # noqa: ANN201
    return load_script("score.py").main


@pytest.mark.parametrize("grouping", ["fake_cls", "method", "source", "face_size", "modality"])
def test_score_by_json_equals_the_recomputation(
    grouping: str, tmp_path: Path, arrays: dict[str, np.ndarray], score_main, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    path = save_predictions(tmp_path / "predictions_test.npz", **arrays)
    capsys.readouterr()
    assert score_main([str(path), "--by", grouping, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for name, values in out.items():
        rows = expected_rows(arrays, grouping, name)
        assert values["n"] == rows.sum()
        if not rows.any():
            continue
        direct = score_predictions({k: v[rows] for k, v in arrays.items()})
        for m in METRIC_NAMES:
            assert (values[m] is None and math.isnan(direct[m])) or values[m] == pytest.approx(direct[m], abs=1e-6)


def test_score_by_writes_files_and_refuses_unknown_or_unavailable_groupings(
    tmp_path: Path, arrays: dict[str, np.ndarray], score_main, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    path = save_predictions(tmp_path / "predictions_val.npz", **arrays)
    assert score_main([str(path), "--by", "fake_cls", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "breakdown_val.md").is_file()
    assert score_main([str(path), "--by", "nope"]) == 2
    assert "unknown grouping(s) nope" in capsys.readouterr().err
    old = save_predictions(tmp_path / "old.npz", **{k: v for k, v in arrays.items() if k != "image"})
    assert score_main([str(old), "--by", "source"]) == 2
    assert "needs the array(s) image" in capsys.readouterr().err
