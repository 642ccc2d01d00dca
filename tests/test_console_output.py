"""Output sent to a file (a `| tee`, a SLURM log, CI) is complete: every metric column of every table and every
path in full. Each entry point runs with its output captured (no terminal, no COLUMNS); in-process where it can."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest
from hydra import compose as compose_config
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from rich.table import Table

import asap.utils.resolvers  # noqa: F401  (the ${...} resolvers of conf/)
from asap.metrics import METRIC_NAMES
from asap.metrics.predictions import save_predictions, synthetic_predictions
from asap.utils.console import FullWidthConsole
from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
ELLIPSIS = "…"


@pytest.fixture(autouse=True)
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


def header_line(output: str, *first: str) -> str:
    """The table header line that holds all of `first` (e.g. "slice", "AUC")."""
    return next(line for line in output.splitlines() if all(f" {name} " in line for name in first))


def assert_every_metric_column(header: str) -> None:
    missing = [name for name in METRIC_NAMES if f" {name} " not in header]
    assert not missing, f"columns cut from {header!r}: {missing}"


def test_the_console_fits_what_it_prints_off_a_terminal() -> None:
    out = io.StringIO()
    console = FullWidthConsole(file=out)
    assert not console.is_terminal and console.width == 80
    table = Table(title="wide")
    for name in ("slice", *METRIC_NAMES):
        table.add_column(name)
    table.add_row("face_attribute&text_attribute", *(f"{100 * i / 7:.2f}" for i in range(12)))
    path = "/runs/" + "deep/" * 30 + "breakdown_test.png"
    console.print(table)
    console.print(f"written: {path}")
    long_path = "/tmp/" + "table9_alpha_2026-12-06_03-00-00/" * 8 + "results.png"  # wider than FILL_WIDTH
    console.print("written: " + ", ".join([long_path] * 8))  # wider than MAX_WIDTH: wraps, but between paths
    text = out.getvalue()
    assert ELLIPSIS not in text and path in text and "face_attribute&text_attribute" in text
    assert text.count(long_path) == 8
    assert_every_metric_column(header_line(text, "slice"))
    assert console.width == 80  # widened for each print only


def _score_main():  # noqa: ANN202
    return load_script("score.py").main


def test_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path.joinpath(*["a_long_folder_name"] * 6)
    path = save_predictions(deep / "predictions_test.npz", **synthetic_predictions(120, 10, 3, record_fields=True))
    main = _score_main()
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert ELLIPSIS not in out and str(path) in out
    for name in METRIC_NAMES:  # one row per metric
        assert f" {name} " in out
    assert main([str(path), "--by", "all", "--out", str(deep)]) == 0
    out = capsys.readouterr().out
    assert ELLIPSIS not in out and str(deep / "breakdown_test.png") in out
    assert_every_metric_column(header_line(out, "slice", "n"))
    assert "face_attribute&text_attribute" in out


def test_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asap.reporting import report

    sweep = tmp_path.joinpath(*["table9_alpha_2026-12-06_03-00-00"] * 4)
    for job, alpha in enumerate(("0.1", "0.5")):
        folder = sweep / str(job)
        folder.mkdir(parents=True)
        test = {m: 50.0 + i for i, m in enumerate(METRIC_NAMES)}
        payload = {"sweep_name": "table9_alpha", "overrides": [f"loss.alpha={alpha}"], "seed": 1, "test": test}
        (folder / "metrics.json").write_text(json.dumps(payload))
        with (folder / "breakdown_test.csv").open("w", newline="") as f:
            csv.writer(f).writerows(
                [["grouping", "slice", "n", *METRIC_NAMES, "notes"], ["fake_cls", "orig", "9", *(["61.5"] * 12), ""]]
            )
    report(sweep)
    out = capsys.readouterr().out
    assert ELLIPSIS not in out and str(sweep / "results.png") in out
    assert_every_metric_column(header_line(out, "source", "run"))  # the paper-style table
    assert_every_metric_column(header_line(out, "run", "slice"))  # the per-type table beside it


def test_train_then_test(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """The train job in-process (as src/train.py runs it): tiny data, two steps, then the test and its breakdown."""
    from asap.pipeline.train import train

    out = tmp_path / "run"
    overrides = [
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.output_dir={out}",
        f"paths.work_dir={tmp_path}",
        "data.synthetic.num_train=16",
        "data.synthetic.num_val=8",
        "data.synthetic.num_test=24",
        "data.num_workers=0",
        "data.validate_workers=1",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose_config(config_name="train", overrides=overrides)
    with caplog.at_level(logging.INFO, logger="asap.callbacks.progress"):
        train(cfg)
    stdout = capsys.readouterr().out
    assert ELLIPSIS not in stdout
    for name in METRIC_NAMES:  # the summary table: one row per metric
        assert f" {name} " in stdout, name
    assert_every_metric_column(header_line(stdout, "slice", "n"))
    assert str(out / "breakdown_test.png") in stdout
    assert (out / "breakdown_test.md").is_file() and (out / "breakdown_test.csv").is_file()
    progress = [r.getMessage() for r in caplog.records if r.name == "asap.callbacks.progress"]
    assert any(m.startswith("train epoch 0: 2/2 batches") for m in progress), progress
    assert any(m.startswith("test: 1/1 batches, test/AUC") for m in progress), progress  # 24 rows, batches of 64
