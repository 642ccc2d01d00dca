"""`python src/train.py` end to end, as processes of their own (`run_script`) in temporary folders, on tiny data.

Every experiment (fast_dev_run), a sweep preset with its results table and one offline W&B run per job (with the
validation-sample media), exact resume by the same command after a kill, after SIGTERM in a step and SIGUSR1 in a
validation, and past a torn newest checkpoint, same-seed repeatability, DDP on the CPU with 2 processes, bad input; and the W&B validation-sample helpers in process. The expensive runs are module-scoped fixtures.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from asap.callbacks.wandb_images import (
    LEGEND,
    PRED_STYLE,
    TRUE_STYLE,
    WandbValidationSamples,
    caption_html,
    denormalize,
    image_boxes,
    types_text,
)
from asap.metrics import METRIC_NAMES
from helpers import KILLED, run_script

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "src" / "train.py"
NUM_TEST = 9  # odd: under 2-process DDP the distributed sampler pads it with a duplicate
SIZES = {"num_train": 16, "num_val": 8, "num_test": NUM_TEST}
# tiny data (2 train batches, 1 val batch) and no console widgets; each test adds what it checks
TINY = [f"data.synthetic.{k}={v}" for k, v in SIZES.items()] + [
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
]
BUNDLED_TOKENIZER = (
    "model.tokenizer=${bundled_bert_tokenizer:}"  # asap_base names bert-base-uncased (a download)
)
WANDB_SAMPLES = 3


# ---------------------------------------------------------------------------------------------------- helpers


def run_train(
    workdir: Path, data_dir: Path, *overrides: str, expect: int | None = 0, tiny: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python src/train.py` with logs under `workdir/logs`, data under `data_dir`, W&B offline inside `workdir`.

    Flags (`-m`) go first; `tiny` adds the TINY overrides; `expect`: the exit status (None: any).
    """
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",  # nothing may download: fail at once instead of retrying
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(workdir / "wandb"),
        "WANDB_CONFIG_DIR": str(workdir / "wandb_config"),
        "WANDB_CACHE_DIR": str(workdir / "wandb_cache"),
        "WANDB_DATA_DIR": str(workdir / "wandb_data"),
        # the runs import the fault-injection callbacks from tests/helpers.py
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p
        ),
    }
    flags = [o for o in overrides if o.startswith("-")]
    args = [*flags, f"paths.log_dir={workdir / 'logs'}", f"paths.data_dir={data_dir}"]
    args += [*(TINY if tiny else []), *(o for o in overrides if o not in flags)]
    workdir.mkdir(parents=True, exist_ok=True)
    run = run_script(TRAIN, *args, cwd=workdir, env=env, timeout=900)
    if expect is not None and run.returncode != expect:
        pytest.fail(
            f"exit status {run.returncode} (expected {expect}) for {' '.join(overrides)}\n"
            f"--- stdout\n{run.stdout[-4000:]}\n--- stderr\n{run.stderr[-4000:]}"
        )
    return run


def multirun_dir(workdir: Path) -> Path:
    """The one multirun folder under `workdir/logs`."""
    (folder,) = (workdir / "logs" / "train" / "multiruns").iterdir()
    return folder


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def read_metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text())


def assert_all_metrics(values: dict[str, float]) -> None:
    """The 12 DGM4 metrics are there; the binary ones are defined (others may be NaN on tiny data, e.g. CF1)."""
    assert set(METRIC_NAMES) <= set(values), f"missing {set(METRIC_NAMES) - set(values)}"
    assert all(isinstance(values[m], float) for m in METRIC_NAMES), values
    assert all(math.isfinite(values[m]) for m in ("AUC", "EER", "ACC", "IoU_mean")), values


def assert_close(a: dict[str, float], b: dict[str, float], tol: float = 1e-6) -> None:
    assert set(a) == set(b)
    different = {
        k: (a[k], b[k]) for k in a if not (abs(a[k] - b[k]) <= tol or (math.isnan(a[k]) and math.isnan(b[k])))
    }
    assert not different, different


def latest_csv(run_dir: Path) -> Path:
    """The metrics.csv of the run folder's last CSVLogger version (a resumed run in place adds a version)."""
    versions = sorted((run_dir / "csv").glob("version_*"), key=lambda p: int(p.name.removeprefix("version_")))
    return versions[-1] / "metrics.csv"


def val_rows(metrics_csv: Path) -> dict[int, dict[str, float]]:
    """{epoch: {metric: value}} of the validation rows of a CSVLogger metrics.csv."""
    out = {}
    for row in csv.DictReader(metrics_csv.open()):
        if row.get("val/AUC"):
            out[int(row["epoch"])] = {
                k.removeprefix("val/"): float(v) for k, v in row.items() if k.startswith("val/") and v
            }
    return out


def offline_runs(job_dir: Path) -> list[Path]:
    return sorted((job_dir / "wandb").glob("offline-run-*"))


def media(run_dir: Path, kind: str, suffix: str) -> list[Path]:
    return sorted((run_dir / "files" / "media" / kind / "val" / "samples").glob(f"*{suffix}"))


def sampled_val_records(data_dir: Path, num_samples: int = WANDB_SAMPLES) -> list[dict[str, Any]]:
    """The validation records WandbValidationSamples shows (evenly spread indices)."""
    records = json.loads((data_dir / "synthetic" / "DGM4" / "metadata" / "val.json").read_text())
    indices = sorted({int(i) for i in np.linspace(0, len(records) - 1, num_samples)})
    return [records[i] for i in indices]


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic set for every run of this module (generated by the first run)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Every experiment, one fast_dev_run each, in one multirun (full-size ones: random init, CPU, batch 2)."""
    workdir = tmp_path_factory.mktemp("experiments")
    run_train(
        workdir,
        data_dir,
        "-m",
        "experiment=smoke,asap_full,hammer_baseline",
        "data=synthetic",  # the paper experiments point at real DGM4
        "trainer=cpu",  # ... and at 8 GPUs
        "trainer.devices=1",
        BUNDLED_TOKENIZER,
        "trainer.fast_dev_run=true",
        "data.batch_size=2",
        "data.eval_batch_size=2",
        "data.num_workers=0",
    )
    return multirun_dir(workdir)


@pytest.fixture(scope="module")
def alpha_sweep(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The Table 9 preset cut to two alphas, one tiny epoch, logged to offline W&B with validation samples."""
    workdir = tmp_path_factory.mktemp("sweep")
    run_train(
        workdir,
        data_dir,
        "sweep=table9_alpha",
        "loss.alpha=0.1,0.5",  # the command line beats the preset's list
        "logger=wandb",
        f"callbacks.wandb_samples.num_samples={WANDB_SAMPLES}",
        "trainer.max_epochs=1",
        "data.num_workers=0",
    )
    return multirun_dir(workdir)


RESUME_COMMON = ["trainer.max_epochs=2", "data.num_workers=1", "seed=7"]  # 2 train batches per epoch


@pytest.fixture(scope="module")
def resume_runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """2 epochs of the smoke config (1 data worker): killed in epoch 1 then the same command again, and uninterrupted."""
    workdir = tmp_path_factory.mktemp("resume")
    interrupted, full = workdir / "interrupted", workdir / "full"
    killer = ["+callbacks.kill._target_=helpers.InterruptAfterEpoch", "+callbacks.kill.epoch=0"]
    run_train(workdir, data_dir, *RESUME_COMMON, *killer, f"hydra.run.dir={interrupted}", expect=KILLED)
    shutil.copy(interrupted / "checkpoints" / "last.ckpt", workdir / "at_kill.ckpt")
    again = run_train(workdir, data_dir, *RESUME_COMMON, f"hydra.run.dir={interrupted}")  # no ckpt_path
    run_train(workdir, data_dir, *RESUME_COMMON, f"hydra.run.dir={full}")
    return {"interrupted": interrupted, "full": full, "at_kill": workdir / "at_kill.ckpt", "again": again}


@pytest.fixture(scope="module")
def signal_runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """The resume runs' config stopped twice by signals and once by a torn checkpoint, the same command each time.

    1. SIGTERM during the first step of epoch 1: a mid-epoch checkpoint, exit 128+15;
    2. the same command: resumes from it, gets SIGUSR1 during epoch 1's validation: stops at epoch 2's start;
    3. the newest checkpoint torn in half, the same command: resumes from the one before, to the end.
    """
    workdir = tmp_path_factory.mktemp("signals")
    run_dir = workdir / "run"
    command = [*RESUME_COMMON, f"hydra.run.dir={run_dir}"]
    term = [
        "+callbacks.sig._target_=helpers.SignalDuringStep",
        "+callbacks.sig.epoch=1",
        "+callbacks.sig.batch=0",
    ]
    usr1 = ["+callbacks.sig._target_=helpers.SignalDuringValidation", "+callbacks.sig.epoch=1"]
    runs: dict[str, Any] = {"dir": run_dir}
    runs["sigterm"] = run_train(
        workdir, data_dir, *command, *term, "+callbacks.sig.signum=SIGTERM", expect=143
    )
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    runs["at_sigterm"] = torch.load(interrupted, map_location="cpu", weights_only=True)
    runs["sigusr1"] = run_train(
        workdir, data_dir, *command, *usr1, "+callbacks.sig.signum=SIGUSR1", expect=138
    )
    from asap.pipeline.resume import checkpoints_newest_first

    newest = checkpoints_newest_first(run_dir / "checkpoints")[0]
    runs["torn"] = newest
    runs["at_sigusr1"] = torch.load(newest, map_location="cpu", weights_only=True)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    runs["torn_resume"] = run_train(workdir, data_dir, *command)
    return runs


@pytest.fixture(scope="module")
def ddp_run(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """2 gloo processes on the CPU, one tiny epoch, with W&B (rank 0 only)."""
    workdir = tmp_path_factory.mktemp("ddp")
    run = run_train(
        workdir,
        data_dir,
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "data.num_workers=0",
        "logger=wandb",
        f"callbacks.wandb_samples.num_samples={WANDB_SAMPLES}",
        f"hydra.run.dir={workdir / 'run'}",
    )
    return workdir / "run", run


# ---------------------------------------------------------------------------------------------------- experiments


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["smoke", "asap_full", "hammer_baseline"])
def test_every_experiment_runs_a_fast_dev_run(experiments: Path, experiment: str) -> None:
    jobs = {read_metrics(job)["choices"]["experiment"]: job for job in job_dirs(experiments)}
    assert set(jobs) == {"smoke", "asap_full", "hammer_baseline"}
    job = jobs[experiment]
    result = read_metrics(job)
    assert result["task_name"] == experiment
    assert result["global_step"] == 1  # fast_dev_run: one training batch
    assert_all_metrics(result["test"])
    from asap.metrics.predictions import load_predictions

    assert len(load_predictions(job / "predictions_test.npz")["ids"]) == 2  # one test batch of 2
    assert not (job / "checkpoints").exists()  # fast_dev_run writes no checkpoint
    config = result["config"]
    # the short from-scratch default regresses the box on boxed pairs only; the paper's runs keep HAMMER's all
    assert config["loss"]["box_samples"] == ("boxed" if experiment == "smoke" else "all")
    if experiment == "smoke":
        assert config["model"]["image_size"] == 64
    else:  # the paper's ViT-B/16 + BERT-base at 256, built from config without weights
        assert config["model"]["image_size"] == 256 and config["model"]["image_encoder"]["embed_dim"] == 768
        assert config["model"]["text_encoder"]["bert"]["hidden_size"] == 768
        assert (
            config["model"]["albef_checkpoint"] is None
            and config["model"]["image_encoder"]["pretrained"] is None
        )
        # the authors' recipe: momentum on, official lr groups, a global batch of 256 by accumulation on 1 device
        assert config["model"]["momentum"]["enabled"] and config["optim"]["schedule"] == "official"
        line = "global batch 256 = 2 per device x 1 device x 128 accumulation steps"
        assert line in (job / f"{experiment}.log").read_text()
    baseline = experiment == "hammer_baseline"
    assert all(config["ablation"][k] != baseline for k in ("caption", "explanation", "ied", "mgca", "pmm"))


@pytest.mark.slow
def test_a_sweep_over_experiments_shares_one_folder_and_table(experiments: Path) -> None:
    table = (experiments / "results.md").read_text()
    for experiment in ("smoke", "asap_full", "hammer_baseline"):
        assert f"| ours | experiment={experiment} |" in table


# ---------------------------------------------------------------------------------------------------- sweep


@pytest.mark.slow
def test_sweep_preset_writes_metrics_per_job(alpha_sweep: Path) -> None:
    jobs = job_dirs(alpha_sweep)
    assert len(jobs) == 2
    alphas = []
    for job in jobs:
        result = read_metrics(job)
        assert result["sweep_name"] == "table9_alpha" and result["choices"]["sweep"] == "table9_alpha"
        assert result["epochs"] == 1 and result["global_step"] == 2
        assert_all_metrics(result["test"])
        assert_all_metrics(result["best_val"])
        assert Path(result["best_checkpoint"]).is_file()
        alphas.append(result["config"]["loss"]["alpha"])
        assert f"loss.alpha={alphas[-1]}" in result["overrides"]
        assert all((job / f"breakdown_test.{kind}").is_file() for kind in ("csv", "md", "png"))
    assert sorted(alphas) == [0.1, 0.5]
    assert "## table9_alpha by fake_cls" in (alpha_sweep / "results.md").read_text()  # beside the main table


@pytest.mark.slow
def test_sweep_results_table_puts_the_paper_beside_ours(alpha_sweep: Path) -> None:
    from asap.reporting import load_paper_tables

    paper = load_paper_tables()[9]
    ours = {
        read_metrics(job)["config"]["loss"]["alpha"]: read_metrics(job)["test"]
        for job in job_dirs(alpha_sweep)
    }
    rows = list(csv.DictReader((alpha_sweep / "results.csv").open()))
    assert [(r["source"], r["run"]) for r in rows] == [
        ("ours", "loss.alpha=0.1"),
        ("paper", "alpha=0.1"),
        ("ours", "loss.alpha=0.5"),
        ("paper", "alpha=0.5"),
    ]
    for row, alpha in ((rows[0], 0.1), (rows[2], 0.5)):
        for metric in METRIC_NAMES:
            if math.isfinite(ours[alpha][metric]):
                assert float(row[f"{metric}_mean"]) == pytest.approx(ours[alpha][metric], abs=1e-4)
    assert float(rows[1]["AUC_mean"]) == pytest.approx(paper["alpha=0.1"]["AUC"])
    markdown = (alpha_sweep / "results.md").read_text()
    assert (
        "paper Table 9" in markdown and f"| paper | alpha=0.5 | {paper['alpha=0.5']['AUC']:.2f} |" in markdown
    )
    assert r"\begin{tabular}" in (alpha_sweep / "results.tex").read_text()
    assert (alpha_sweep / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_sweep_gives_each_job_its_own_offline_wandb_run_with_samples(
    alpha_sweep: Path, data_dir: Path
) -> None:
    run_ids = set()
    for job in job_dirs(alpha_sweep):
        (run_dir,) = offline_runs(job)
        run_id = run_dir.name.rsplit("-", 1)[1]
        assert (run_dir / f"run-{run_id}.wandb").stat().st_size > 0
        run_ids.add(run_id)
        records = sampled_val_records(data_dir)
        assert len(media(run_dir, "images", ".png")) == len(records)  # one validation, WANDB_SAMPLES samples
        boxes = [json.loads(p.read_text()) for p in media(run_dir, "metadata/boxes2D", ".json")]
        classes = [b["class_id"] for group in boxes for b in group["box_data"]]
        assert all(group["class_labels"] == {"0": "pred", "1": "true"} for group in boxes)
        assert classes.count(0) == len(records)  # a predicted box per sample
        assert classes.count(1) == sum(
            bool(r["fake_image_box"]) for r in records
        )  # a true box where there is one
        breakdown = run_dir / "files" / "media"  # the breakdown: a table and its figure
        (table,) = (breakdown / "table" / "breakdown").glob("test_*.table.json")
        assert json.loads(table.read_text())["columns"] == ["grouping", "slice", "n", *METRIC_NAMES]
        assert len(list((breakdown / "images" / "breakdown").glob("test_figure_*.png"))) == 1
        captions = [p.read_text() for p in media(run_dir, "html", ".html")]
        assert len(captions) == len(records) and all(LEGEND in c for c in captions)
        for record in records:
            first_word = record["text"].split()[0].lower().strip(".,")
            assert any(first_word in c for c in captions), first_word
    assert len(run_ids) == 2


# ---------------------------------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(resume_runs: dict[str, Any]) -> None:
    last = resume_runs["interrupted"] / "checkpoints" / "last.ckpt"
    assert f"resuming from {last} (epoch 0, global step 2)" in resume_runs["again"].stdout  # the same command
    resumed, full = read_metrics(resume_runs["interrupted"]), read_metrics(resume_runs["full"])
    assert resumed["epochs"] == full["epochs"] == 2 and resumed["global_step"] == full["global_step"] == 4
    assert_all_metrics(full["test"])
    assert_close(resumed["test"], full["test"])
    assert_close(resumed["best_val"], full["best_val"])
    assert Path(resumed["best_checkpoint"]).name == Path(full["best_checkpoint"]).name
    # the resumed process went on from epoch 1 (it did not start over)
    resumed_epochs = val_rows(latest_csv(resume_runs["interrupted"]))
    assert sorted(resumed_epochs) == [1]
    assert_close(resumed_epochs[1], val_rows(latest_csv(resume_runs["full"]))[1])


@pytest.mark.slow
def test_signals_save_and_the_same_command_resumes_to_the_uninterrupted_metrics(
    signal_runs: dict[str, Any], resume_runs: dict[str, Any]
) -> None:
    run_dir, checkpoints = signal_runs["dir"], signal_runs["dir"] / "checkpoints"
    # SIGTERM in a step: that step finished, then a mid-epoch checkpoint, with the train loader's place in the epoch
    at_sigterm = signal_runs["at_sigterm"]
    assert (at_sigterm["epoch"], at_sigterm["global_step"]) == (1, 3)
    assert at_sigterm["DGM4DataModule"]["train_epoch"]["batches_served"] == 1
    assert "SIGTERM received: training stopped at epoch 1, global step 3" in signal_runs["sigterm"].stdout
    # the same command resumed from it; SIGUSR1 in validation: the epoch end was checkpointed, then the stop
    resumed = signal_runs["sigusr1"].stdout
    assert f"resuming from {checkpoints / 'interrupted.ckpt'} (epoch 1, global step 3)" in resumed
    assert "SIGUSR1 received: training stopped at epoch 2, global step 4" in resumed
    at_sigusr1 = signal_runs["at_sigusr1"]
    assert (at_sigusr1["epoch"], at_sigusr1["global_step"]) == (1, 4)
    assert at_sigusr1["DGM4DataModule"] == {"train_epoch": {}, "next_sampler_epoch": 2}  # an epoch end
    # a torn newest checkpoint is named, and the one before it used
    torn, last_run = signal_runs["torn"], signal_runs["torn_resume"].stdout
    assert f"not resuming from {torn.name}, it cannot be read" in last_run and "resuming from" in last_run
    assert not (checkpoints / "interrupted.ckpt").exists()  # a finished run leaves no stale one behind
    stopped, full = read_metrics(run_dir), read_metrics(resume_runs["full"])
    assert stopped["global_step"] == full["global_step"] == 4
    assert_close(stopped["test"], full["test"])
    assert_close(stopped["best_val"], full["best_val"])


@pytest.mark.slow
def test_same_seed_twice_gives_the_same_metrics(resume_runs: dict[str, Any]) -> None:
    checkpoint = torch.load(resume_runs["at_kill"], map_location="cpu", weights_only=True)
    assert (
        checkpoint["epoch"] == 0 and checkpoint["global_step"] == 2
    )  # the kill came after epoch 0's checkpoint
    assert {"python", "numpy", "torch"} <= set(checkpoint["rng_states"])
    first_run = checkpoint["callbacks"]["BestValidationMetrics"][
        "best"
    ]  # validation of epoch 0, first process
    second_run = val_rows(latest_csv(resume_runs["full"]))[0]  # the same, the uninterrupted process
    assert_all_metrics(first_run)
    assert_close(first_run, second_run)


# ---------------------------------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_ddp_on_cpu_gathers_test_predictions_from_both_ranks(
    ddp_run: tuple[Path, Any], data_dir: Path
) -> None:
    from asap.metrics.predictions import load_predictions

    run_dir, run = ddp_run
    assert "MEMBER: 2/2" in run.stderr  # two processes took part
    result = read_metrics(run_dir)
    assert result["config"]["trainer"]["strategy"] == "ddp" and result["config"]["trainer"]["devices"] == 2
    assert_all_metrics(result["test"])
    predictions = load_predictions(run_dir / "predictions_test.npz")
    assert sorted(predictions["index"].tolist()) == list(
        range(NUM_TEST)
    )  # one row per sample, padding dropped
    # record ids repeat in DGM4 (a text swap keeps its original's id): each row's id is its own record's
    records = json.loads((data_dir / "synthetic" / "DGM4" / "metadata" / "test.json").read_text())
    assert predictions["ids"].tolist() == [str(records[i]["id"]) for i in predictions["index"].tolist()]
    for field in ("fake_cls", "image"):  # the record fields a breakdown slices by, each row its own record's
        assert predictions[field].tolist() == [records[i][field] for i in predictions["index"].tolist()]
    assert (run_dir / "breakdown_test.md").is_file()  # written once, by rank 0
    # the reported metrics count each test sample once (not the sampler's padding), as the prediction file does
    from asap.metrics.predictions import score_predictions

    assert_close(result["test"], score_predictions(predictions))


@pytest.mark.slow
def test_under_ddp_wandb_samples_are_logged_once_by_rank_zero(
    ddp_run: tuple[Path, Any], data_dir: Path
) -> None:
    run_dir, _ = ddp_run
    (wandb_run,) = offline_runs(run_dir)
    assert len(media(wandb_run, "images", ".png")) == len(sampled_val_records(data_dir))


# ---------------------------------------------------------------------------------------------------- bad input


def test_missing_data_root_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The train job under `exit_on_user_error`, as src/train.py runs it (the next test runs the script)."""
    from hydra import compose, initialize_config_dir

    import asap.utils.resolvers  # noqa: F401  (the ${...} resolvers of conf/)
    from asap.pipeline.train import train
    from asap.utils.cli import exit_on_user_error

    missing = tmp_path / "nowhere"
    paths = [f"paths.{k}={tmp_path / k}" for k in ("log_dir", "data_dir", "output_dir")]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train", overrides=[*paths, f"paths.work_dir={tmp_path}", "data=dgm4", f"data.root={missing}"]
        )
    with pytest.raises(SystemExit) as stopped:
        exit_on_user_error(train)(cfg)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert stopped.value.code != 0
    assert str(missing) in output and "not found" in output
    assert "Traceback" not in output


def test_a_value_of_the_wrong_type_says_which(tmp_path: Path) -> None:
    run = run_train(tmp_path, tmp_path / "data", "loss.alpha=abc", expect=None)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "loss" in output and "'abc'" in output
    assert "Traceback" not in output


# ---------------------------------------------------------------------------------------------------- W&B helpers


def test_caption_html_joins_word_pieces_and_marks_true_and_predicted_words() -> None:
    tokens = ["anna", "smiles", "at", "the", "beach", "##es", "<b>"]
    true = [1, 0, 0, 0, 0, 1, 0]
    pred = [1, 1, 0, 0, 0, 0, 0]
    html = caption_html(tokens, true, pred)
    assert f'<span style="{TRUE_STYLE};{PRED_STYLE}">anna</span>' in html
    assert f'<span style="{PRED_STYLE}">smiles</span>' in html
    assert f'<span style="{TRUE_STYLE}">beaches</span>' in html  # a piece marks its whole word
    assert " at the " in html and "&lt;b&gt;" in html and "<b>" not in html
    with pytest.raises(ValueError, match="differ in length"):
        caption_html(tokens, true[:-1], pred)


def test_image_boxes_are_wandb_relative_boxes_pred_and_true() -> None:
    boxes = image_boxes([0.5, 0.4, 0.2, 0.1], [0.3, 0.3, 0.2, 0.2], p_fake=0.9)
    (pred,) = boxes["predictions"]["box_data"]
    assert pred["position"] == {"middle": [0.5, 0.4], "width": 0.2, "height": 0.1}
    assert pred["class_id"] == 0 and boxes["predictions"]["class_labels"] == {0: "pred", 1: "true"}
    assert boxes["ground_truth"]["box_data"][0]["class_id"] == 1
    assert "ground_truth" not in image_boxes([0.5, 0.5, 0.1, 0.1], None, p_fake=0.1)  # no true box: pred only
    assert types_text([True, False, False, True]) == "FS+TA" and types_text([False] * 4) == "orig"


def test_denormalize_inverts_the_clip_normalisation() -> None:
    from torchvision.transforms.v2 import Normalize

    from asap.data.transforms import CLIP_MEAN, CLIP_STD

    pixels = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    normalised = Normalize(CLIP_MEAN, CLIP_STD)(pixels.float() / 255)
    assert np.array_equal(denormalize(normalised), pixels.permute(1, 2, 0).numpy())


def test_wandb_samples_callback_is_a_no_op_without_wandb(tmp_path: Path) -> None:
    callback = WandbValidationSamples(num_samples=2)
    for loggers in (False, CSVLogger(tmp_path)):
        trainer = L.Trainer(
            logger=loggers, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False
        )
        callback.on_validation_end(
            trainer, pl_module=None
        )  # would need the module and a val loader if it logged
    with pytest.raises(ValueError, match="num_samples"):
        WandbValidationSamples(num_samples=0)


def test_a_wrong_argument_in_a_config_node_is_a_user_error() -> None:
    from omegaconf import OmegaConf

    from asap.errors import UserError
    from asap.pipeline.common import instantiate

    node = OmegaConf.create({"_target_": "lightning.pytorch.Trainer", "max_epochs": 1, "max_epoch": 2})
    with pytest.raises(
        UserError, match=r"the trainer config cannot be used: .*unexpected keyword argument 'max_epoch'"
    ):
        instantiate(node, "trainer")


def test_logger_none_runs_without_the_learning_rate_monitor(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.callbacks import LearningRateMonitor

    from asap.pipeline.common import build_loggers, drop_callbacks_needing_a_logger, instantiate_callbacks

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "logger=none",
                f"paths.log_dir={tmp_path}",
                f"paths.data_dir={tmp_path}",
                f"paths.output_dir={tmp_path}",
            ],
        )
    loggers = build_loggers(cfg)
    callbacks = instantiate_callbacks(cfg.callbacks)
    assert loggers == [] and any(isinstance(c, LearningRateMonitor) for c in callbacks)
    kept = drop_callbacks_needing_a_logger(callbacks, loggers)
    assert not any(isinstance(c, LearningRateMonitor) for c in kept) and len(kept) == len(callbacks) - 1
    assert drop_callbacks_needing_a_logger(callbacks, [object()]) == callbacks  # type: ignore[list-item]
