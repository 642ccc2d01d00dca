"""`src/eval.py` end to end: a checkpoint from a short real fit -> metrics.json, predictions, F1 chart; bad files."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose as compose_config
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from PIL import Image

import asap.utils.resolvers  # noqa: F401  (the ${...} resolvers of conf/)
from asap.metrics import METRIC_NAMES
from helpers import load_script, run_script

ROOT = Path(__file__).resolve().parents[1]
# a tiny synthetic set and a two-step fit: the checkpoint is real but cheap
DATA = [
    "data.synthetic.num_train=32",
    "data.synthetic.num_val=16",
    "data.synthetic.num_test=16",
    "data.num_workers=0",
    "data.validate_workers=1",
]
ENV = {**os.environ, "COLUMNS": "250", "ASAP_TRACEBACK": ""}  # wide console: error lines are not wrapped


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval")


def paths(workdir: Path) -> list[str]:
    return [f"paths.log_dir={workdir / 'logs'}", f"paths.data_dir={workdir / 'data'}"]


def in_process_paths(workdir: Path, output_dir: Path) -> list[str]:
    """Without a Hydra app the `${hydra:...}` paths are not set: give them."""
    return [*paths(workdir), f"paths.output_dir={output_dir}", f"paths.work_dir={workdir}"]


def compose(name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose_config(config_name=name, overrides=overrides)


@pytest.fixture(scope="module")
def checkpoint(workdir: Path) -> Path:
    """The train job (in-process, as `src/train.py` runs it) for two steps of one epoch, no test stage."""
    from asap.pipeline.train import train

    out = workdir / "train_out"
    overrides = [*in_process_paths(workdir, out), *DATA, "data.batch_size=8"]
    overrides += [
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "trainer.log_every_n_steps=1",
        "test=false",
    ]
    train(compose("train", overrides))
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def eval_run(workdir: Path, checkpoint: Path) -> tuple[Path, str]:
    """src/eval.py with its output captured as a log would (no terminal, no COLUMNS): the folder and stdout."""
    out = workdir / "eval_out"
    env = {k: v for k, v in ENV.items() if k != "COLUMNS"}
    args = [f"ckpt_path={checkpoint}", *paths(workdir), *DATA, f"hydra.run.dir={out}"]
    result = run_script("eval.py", *args, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "DGM4 metrics" in result.stdout and "IoU_mean" in result.stdout  # the rich table
    return out, result.stdout


@pytest.fixture(scope="module")
def eval_dir(eval_run: tuple[Path, str]) -> Path:
    return eval_run[0]


def test_log_shows_every_metric_column_and_full_paths(eval_run: tuple[Path, str]) -> None:
    out, stdout = eval_run
    assert "…" not in stdout
    header = next(line for line in stdout.splitlines() if " slice " in line and " AUC " in line)
    for name in ("n", *METRIC_NAMES):  # the breakdown tables: every column, in full
        assert f" {name} " in header, name
    assert str(out / "breakdown_test.png") in stdout


def test_breakdown_files_by_every_grouping(eval_dir: Path) -> None:
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert report["breakdown"]["png"] == str(eval_dir / "breakdown_test.png")
    markdown = (eval_dir / "breakdown_test.md").read_text()
    for grouping in ("fake_cls", "method", "source", "face_size", "modality"):
        assert f"## {grouping}" in markdown
    with Image.open(eval_dir / "breakdown_test.png") as im:
        assert im.format == "PNG" and im.width > 500


def test_metrics_json_has_the_12_metrics_and_the_per_type_f1(eval_dir: Path, checkpoint: Path) -> None:
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert report["split"] == "test" and report["checkpoint"] == str(checkpoint)
    metrics = report["test"]
    for name in (*METRIC_NAMES, "F1_FS", "F1_FA", "F1_TS", "F1_TA", "IoU_mean_boxed"):
        assert name in metrics, name
    for name in ("AUC", "ACC", "mAP", "IoU_mean"):  # defined on any split with both classes
        assert 0.0 <= metrics[name] <= 100.0, (name, metrics[name])
    assert report["num_samples"] == 16
    assert report["model"]["image_size"] == 64  # the model config comes from the checkpoint


def test_prediction_file_rescored_by_score_py_gives_the_same_numbers(
    eval_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python src/score.py --json FILE` (its `main`, loaded from the script file)."""
    metrics = json.loads((eval_dir / "metrics.json").read_text())["test"]
    score = load_script("score.py")
    capsys.readouterr()
    assert score.main(["--json", str(eval_dir / "predictions_test.npz")]) == 0
    rescored = json.loads(capsys.readouterr().out)
    assert set(METRIC_NAMES) <= set(rescored)
    for name, value in rescored.items():
        if name in metrics:
            assert (math.isnan(value) and math.isnan(metrics[name])) or value == pytest.approx(
                metrics[name], abs=1e-9
            ), name
    with np.load(eval_dir / "predictions_test.npz") as arrays:
        assert len(arrays["ids"]) == 16 and len(set(arrays["ids"].tolist())) == 16  # every test record once


def test_per_type_f1_chart_is_a_png(eval_dir: Path) -> None:
    with Image.open(eval_dir / "f1_per_type.png") as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100


def _truncated(checkpoint: Path, path: Path) -> None:
    path.write_bytes(checkpoint.read_bytes()[:4096])


def _foreign(checkpoint: Path, path: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": 0.1}}, path)


def _unsafe(checkpoint: Path, path: Path) -> None:
    path.write_bytes(pickle.dumps(Path("/etc/passwd")))  # not loadable with weights_only=True


def test_truncated_checkpoint_exits_2_with_one_clear_line(
    workdir: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The eval job under `exit_on_user_error` (as src/eval.py runs it; `eval_run` runs the script itself)."""
    from asap.pipeline.evaluate import evaluate
    from asap.utils.cli import exit_on_user_error

    bad = workdir / "truncated.ckpt"
    _truncated(checkpoint, bad)
    cfg = compose("eval", [f"ckpt_path={bad}", *in_process_paths(workdir, workdir / "truncated_out"), *DATA])
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(evaluate)(cfg)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert exit_info.value.code == 2, output[-3000:]
    assert "Traceback" not in output
    assert "CheckpointError" in output and "corrupt or truncated" in output and str(bad) in output


@pytest.mark.parametrize(
    "make, message",
    [(_foreign, "not an ASAP checkpoint"), (_unsafe, "not loaded (weights_only=True)"), (None, "not found")],
)
def test_foreign_unsafe_or_missing_checkpoint_is_a_user_error(
    workdir: Path, checkpoint: Path, make, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The eval job under `exit_on_user_error` (as src/eval.py runs it), in-process."""
    from asap.pipeline.evaluate import evaluate
    from asap.utils.cli import exit_on_user_error

    bad = workdir / f"{make.__name__ if make else 'missing'}.ckpt"
    if make:
        make(checkpoint, bad)
    cfg = compose("eval", [f"ckpt_path={bad}", *in_process_paths(workdir, workdir / "bad_out"), *DATA])
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(evaluate)(cfg)
    output = " ".join(capsys.readouterr().out.split())  # unwrap the console's line breaks
    assert exit_info.value.code == 2
    assert "CheckpointError" in output and message in output and bad.name in output
    assert not (workdir / "bad_out" / "metrics.json").exists()
