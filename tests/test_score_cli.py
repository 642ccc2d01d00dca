"""`python src/score.py`: the grouped table, --json, and malformed files (one line, exit code 2).

Its `main` runs in-process (loaded from the script file); `--help` runs the script itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asap.metrics import EXTRA_METRIC_NAMES, METRIC_GROUPS, METRIC_NAMES
from asap.metrics.predictions import save_predictions, score_predictions, synthetic_predictions
from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


def load_score_main():  # noqa: ANN201
    return load_script("score.py").main


@pytest.fixture(scope="module")
def score_main():  # noqa: ANN201
    return load_score_main()


@pytest.fixture
def score(score_main, capsys: pytest.CaptureFixture[str]):  # noqa: ANN001, ANN201
    """`score(*args)`: `python src/score.py *args` in-process, as (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = score_main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def prediction_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    arrays = synthetic_predictions(300, num_tokens=16, seed=2)
    path = save_predictions(tmp_path_factory.mktemp("score") / "predictions_test.npz", **arrays)
    return path, score_predictions(arrays)


def test_json_keys_and_values(prediction_file: tuple[Path, dict[str, float]], score) -> None:  # noqa: ANN001
    path, expected = prediction_file
    status, stdout, stderr = score(str(path), "--json")
    assert status == 0, stderr
    out = json.loads(stdout)
    assert list(out)[:12] == list(METRIC_NAMES)
    assert set(out) == set(METRIC_NAMES) | set(EXTRA_METRIC_NAMES)
    assert out == pytest.approx(expected, abs=1e-12)


def test_table_grouped_like_the_paper(prediction_file: tuple[Path, dict[str, float]], score) -> None:  # noqa: ANN001
    path, expected = prediction_file
    status, stdout, stderr = score(str(path))
    assert status == 0, stderr
    lines = stdout.splitlines()
    assert "300 samples, 16 token positions" in stdout
    starts = [next(i for i, line in enumerate(lines) if group in line) for group in METRIC_GROUPS]
    assert starts == sorted(starts)  # Binary, Multi-label, Image grounding, Text grounding
    for name in METRIC_NAMES + ("F1_FS", "IoU_mean_boxed"):
        row = next(line for line in lines if f" {name} " in line)
        assert f"{expected[name]:.2f}" in row, name


def test_malformed_file_one_line_exit_2(
    tmp_path: Path,
    prediction_file: tuple[Path, dict[str, float]],
    score,  # noqa: ANN001
) -> None:
    with np.load(prediction_file[0]) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["box_pred"] = arrays["box_pred"][:, :3]
    np.savez(tmp_path / "bad.npz", **arrays)
    for path, words in (
        (tmp_path / "bad.npz", "'box_pred' has shape (300, 3)"),
        (tmp_path / "nope.npz", "no such file"),
    ):
        status, stdout, stderr = score(str(path))
        assert status == 2
        assert stdout == "" and "Traceback" not in stderr
        assert stderr.count("\n") == 1 and stderr.startswith("error: ") and words in stderr


def test_help() -> None:
    """The script itself, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "src/score.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "--json" in result.stdout and "HAMMER" in result.stdout
