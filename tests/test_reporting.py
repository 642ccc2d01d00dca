"""The results table of a sweep, built from a hand-made multirun folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from asap.metrics import METRIC_NAMES
from asap.reporting import build_results_table, load_paper_tables, write_all
from helpers import load_script, run_script

ROOT = Path(__file__).resolve().parents[1]


def _job(folder: Path, overrides: list[str], seed: int, value: float, sweep: str = "table9_alpha") -> None:
    folder.mkdir(parents=True)
    test = {m: value + i for i, m in enumerate(METRIC_NAMES)}
    payload = {"sweep_name": sweep, "overrides": overrides, "seed": seed, "test": test}
    (folder / "metrics.json").write_text(json.dumps(payload))


@pytest.fixture
def alpha_sweep(tmp_path: Path) -> Path:
    # two alphas x two seeds, as `python src/train.py sweep=table9_alpha seed=1,2` writes them
    _job(tmp_path / "0", ["loss.alpha=0.1", "seed=1"], 1, 50.0)
    _job(tmp_path / "1", ["loss.alpha=0.1", "seed=2"], 2, 52.0)
    _job(tmp_path / "2", ["loss.alpha=0.5", "seed=1"], 1, 40.0)
    _job(tmp_path / "3", ["loss.alpha=0.5", "seed=2"], 2, 40.0)
    return tmp_path


def test_paper_tables_are_the_reference_numbers() -> None:
    tables = load_paper_tables()
    assert tables[1]["ASAP"]["AUC"] == pytest.approx(94.38)
    assert tables[9]["alpha=0.5"]["IoU75"] == pytest.approx(77.12)
    assert set(tables) == {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
    assert "mAP" not in tables[5]["text only"]  # tables 5-6 keep the binary columns only


def test_variants_average_over_seeds_and_match_paper_rows(alpha_sweep: Path) -> None:
    results = build_results_table(alpha_sweep)
    assert results.table == 9
    by_name = {v.name: v for v in results.variants}
    assert set(by_name) == {"loss.alpha=0.1", "loss.alpha=0.5"}
    low = by_name["loss.alpha=0.1"]
    assert low.seeds == [1, 2]
    assert low.mean("AUC") == pytest.approx(51.0)
    assert low.std("AUC") == pytest.approx(2**0.5)  # sample std of 50, 52
    assert by_name["loss.alpha=0.5"].std("F1") == pytest.approx(0.0)
    assert low.paper_row == "alpha=0.1"
    assert results.cell(low, "AUC") == "51.00 ± 1.41"


def test_writers_produce_every_format(alpha_sweep: Path) -> None:
    results = build_results_table(alpha_sweep)
    paths = write_all(results, alpha_sweep)
    md = paths["md"].read_text()
    assert "| ours | loss.alpha=0.1 (n=2) | 51.00 ± 1.41" in md
    assert "| paper | alpha=0.1 | 94.38" in md
    assert md.index("AUC") < md.index("EER") < md.index("IoU_mean") < md.index("Recall")
    assert r"\begin{tabular}" in paths["tex"].read_text() and r"$\pm$" in paths["tex"].read_text()
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["source"] for r in rows] == ["ours", "paper", "ours", "paper"]
    assert float(rows[0]["AUC_mean"]) == pytest.approx(51.0)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command(alpha_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The script itself on a sweep; its `main` (loaded from the script file) on a folder without jobs."""
    run = run_script("report.py", str(alpha_sweep))
    assert run.returncode == 0, run.stderr
    assert "table9_alpha" in run.stdout and (alpha_sweep / "results.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    script = load_script("report.py")
    capsys.readouterr()
    assert script.main([str(empty)]) == 2 and "no metrics.json" in capsys.readouterr().out


def _breakdown_csv(folder: Path, auc_orig: str, acc_swap: float) -> None:
    """A job's breakdown_test.csv, as asap.reporting.breakdown.write_csv writes it."""
    header = ["grouping", "slice", "n", *METRIC_NAMES, "notes"]
    rows = [
        ["all", "all", "40", *(["50.0"] * 12), ""],
        ["fake_cls", "orig", "20", auc_orig, *(["60.0"] * 11), "AUC: one class only (all real)"],
        [
            "fake_cls",
            "face_swap",
            "20",
            "",
            "",
            str(acc_swap),
            *(["70.0"] * 9),
            "AUC: one class only (all fake)",
        ],
        ["method", "", "", *([""] * 12), "not computed"],
    ]
    with (folder / "breakdown_test.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def test_per_type_table_beside_the_main_one(alpha_sweep: Path) -> None:
    for job, acc in zip(("0", "1", "2", "3"), (80.0, 84.0, 70.0, 70.0), strict=True):
        _breakdown_csv(alpha_sweep / job, "", acc)
    results = build_results_table(alpha_sweep)
    low = next(v for v in results.variants if v.name == "loss.alpha=0.1")
    assert results.slice_names("fake_cls") == ["orig", "face_swap"]
    assert results.slice_cell(low, ("fake_cls", "face_swap"), "ACC") == "82.00 ± 2.83"
    assert results.slice_cell(low, ("fake_cls", "orig"), "AUC") == "–"  # undefined in every seed
    paths = write_all(results, alpha_sweep)
    md = paths["md"].read_text()
    assert md.index("## table9_alpha by fake_cls") > md.index("| ours | loss.alpha=0.1 (n=2) |")
    assert "| loss.alpha=0.1 | face_swap | 20 | – | – | 82.00 ± 2.83 |" in md
    rows = list(csv.DictReader(paths["slices_csv"].open()))
    assert [(r["run"], r["slice"]) for r in rows][:2] == [
        ("loss.alpha=0.1", "orig"),
        ("loss.alpha=0.1", "face_swap"),
    ]
    assert float(rows[1]["ACC_mean"]) == pytest.approx(82.0) and rows[1]["AUC_mean"] == ""
