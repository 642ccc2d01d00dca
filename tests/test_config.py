"""Every experiment, sweep preset and config group composes; bad choices give clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import asap.utils.resolvers  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str], name: str = "train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiments_compose(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}", "data.root=/tmp/dgm4"])
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    assert resolved["image_size"] == cfg.data.image_size
    assert cfg.task_name == experiment


def test_paper_experiment_is_the_paper_setting() -> None:
    cfg = _compose(["experiment=asap_full", "data.root=/tmp/dgm4"])
    assert cfg.model.image_size == 256 and cfg.model.patch_size == 16
    assert cfg.loss.alpha == pytest.approx(0.1) and cfg.loss.lambda_ == pytest.approx(0.01)
    assert cfg.loss.bbox == pytest.approx(0.1) and cfg.loss.giou == pytest.approx(0.1)  # HAMMER's weights
    assert cfg.model.image_encoder.stem == "patch" and cfg.model.image_encoder.pos_embed_init == "random"
    assert cfg.model.center_contrastive is False and cfg.model.init_std == pytest.approx(0.02)  # as written
    assert cfg.loss.lma == pytest.approx(1.0)  # eq. 6 unweighted
    assert cfg.data.batch_size == 32 and cfg.trainer.max_epochs == 50
    assert cfg.trainer.precision == "bf16-mixed"
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.warmup_steps == 1000
    assert cfg.optim.min_lr == pytest.approx(1e-6) and cfg.optim.weight_decay == pytest.approx(0.02)
    assert all(cfg.ablation[k] for k in ("caption", "explanation", "ied", "mgca", "pmm", "hnp"))
    baseline = _compose(["experiment=hammer_baseline", "data.root=/tmp/dgm4"])
    assert not any(baseline.ablation[k] for k in ("caption", "explanation", "ied", "mgca", "pmm"))
    assert baseline.model.image_size == 256


def test_command_line_group_beats_experiment() -> None:
    cfg = _compose(["experiment=asap_full", "ablation=baseline", "data.root=/tmp/dgm4"])
    assert not cfg.ablation.mgca


@pytest.mark.parametrize("sweep", _options("sweep"))
def test_sweep_presets_compose_and_sweep_known_keys(sweep: str) -> None:
    cfg = _compose([f"sweep={sweep}"])
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.sweep_name == sweep
    params = cfg.hydra.sweeper.params
    assert len(params) == 1
    (key, values), = params.items()
    if key == "ablation":
        assert set(values.split(",")) <= set(_options("ablation"))
    else:
        assert OmegaConf.select(cfg, key) is not None, f"{sweep} sweeps {key}, which the config does not have"


@pytest.mark.parametrize(
    "group", ["ablation", "trainer", "logger", "callbacks", "debug", "launcher", "data", "model", "mode"]
)
def test_every_group_option_composes(group: str) -> None:
    for option in _options(group):
        cfg = _compose([f"{group}={option}", "data.root=/tmp/dgm4"] if group != "data" else [f"data={option}"])
        assert cfg is not None


def test_eval_config_composes() -> None:
    cfg = _compose(["ckpt_path=/tmp/x.ckpt"], name="eval")
    assert cfg.split == "test" and cfg.ckpt_path == "/tmp/x.ckpt"


def test_unknown_option_lists_the_valid_choices() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "src/train.py"), "ablation=nonsense"], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode != 0
    assert "Could not find 'ablation/nonsense'" in run.stderr
    assert "full" in run.stderr and "baseline" in run.stderr  # the valid choices are listed
    assert "Traceback" not in run.stderr


def test_help_lists_the_groups() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "src/train.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0
    for group in ("ablation", "experiment", "sweep", "model", "data", "logger", "trainer", "mode"):
        assert f"{group}:" in run.stdout
