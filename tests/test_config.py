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
    cfg = _compose(["experiment=asap_paper", "data.root=/tmp/dgm4"])
    assert cfg.model.image_size == 256 and cfg.model.patch_size == 16
    assert cfg.loss.alpha == pytest.approx(0.1) and cfg.loss.lambda_ == pytest.approx(0.01)
    assert cfg.model.image_encoder.stem == "patch" and cfg.model.image_encoder.pos_embed_init == "random"
    assert cfg.model.center_contrastive is False and cfg.model.init_std == pytest.approx(0.02)  # as written
    assert cfg.trainer.max_epochs == 50
    assert cfg.optim.schedule == "paper" and cfg.optim.param_groups is None  # §4.1: one lr
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.warmup_steps == 1000
    assert cfg.optim.min_lr == pytest.approx(1e-6) and cfg.optim.weight_decay == pytest.approx(0.02)
    assert all(cfg.ablation[k] for k in ("caption", "explanation", "ied", "mgca", "pmm", "hnp"))
    assert cfg.hydra.runtime.choices.mode == "paper"


@pytest.mark.parametrize("experiment", ["asap_full", "hammer_baseline", "asap_paper"])
def test_paper_experiments_train_as_the_authors_did(experiment: str) -> None:
    """Momentum, queues and distillation on, fp32, 32 per device x 8 devices = a global batch of 256."""
    cfg = _compose([f"experiment={experiment}", "data.root=/tmp/dgm4"])
    momentum = cfg.model.momentum
    assert momentum.enabled and momentum.decay == pytest.approx(0.995) and momentum.queue_size == 65536
    assert momentum.distill_alpha == pytest.approx(0.4)
    assert cfg.trainer.precision == "32-true" and cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 8
    assert cfg.data.batch_size == 32 and cfg.global_batch_size == 256
    assert cfg.loss.bbox == pytest.approx(0.1) and cfg.loss.giou == pytest.approx(0.1)  # HAMMER's weights
    assert cfg.loss.box_samples == "all"


@pytest.mark.parametrize("experiment", ["asap_full", "hammer_baseline"])
def test_the_reproduction_experiments_run_in_official_mode(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}", "data.root=/tmp/dgm4"])
    assert cfg.hydra.runtime.choices.mode == "official" and cfg.hydra.runtime.choices.optim == "official"
    o = cfg.optim
    assert o.schedule == "official" and o.param_groups == "official" and o.decay_all
    assert o.lr == pytest.approx(1e-4) and o.rest_lr == pytest.approx(2e-5)  # lr_img, lr (configs/train.yaml)
    assert o.warmup_lr == pytest.approx(1e-6) and o.min_lr == pytest.approx(1e-6)
    assert o.warmup_stages == 10 and o.warmup_stage_steps == 100 and o.weight_decay == pytest.approx(0.02)
    baseline = experiment == "hammer_baseline"
    assert all(cfg.ablation[k] != baseline for k in ("caption", "explanation", "ied", "mgca", "pmm"))


def test_the_embedded_default_keeps_its_recipe() -> None:
    """`make train`: paper mode, the paper's schedule at the smoke's rates, no momentum, one CPU, no accumulation."""
    cfg = _compose([])
    assert cfg.task_name == "smoke" and cfg.hydra.runtime.choices.mode == "paper"
    assert cfg.optim.schedule == "paper" and cfg.optim.param_groups is None and not cfg.optim.decay_all
    assert cfg.optim.lr == pytest.approx(1e-3) and cfg.optim.warmup_steps == 50
    assert cfg.optim.min_lr == pytest.approx(1e-5)
    assert not cfg.model.momentum.enabled and cfg.global_batch_size is None
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "32-true"


def test_command_line_group_beats_experiment() -> None:
    cfg = _compose(["experiment=asap_full", "ablation=baseline", "data.root=/tmp/dgm4"])
    assert not cfg.ablation.mgca


@pytest.mark.parametrize("experiment", ["smoke", "asap_full", "asap_paper"])
@pytest.mark.parametrize("sweep", _options("sweep"))
def test_sweep_presets_compose_and_sweep_known_keys(sweep: str, experiment: str) -> None:
    cfg = _compose([f"sweep={sweep}", f"experiment={experiment}", "data.root=/tmp/dgm4"])
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.sweep_name == sweep
    params = cfg.hydra.sweeper.params
    assert len(params) == 1
    (key, values), = params.items()
    if key == "ablation":
        assert set(values.split(",")) <= set(_options("ablation"))
    else:
        assert OmegaConf.select(cfg, key) is not None, f"{sweep} sweeps {key}, which the config does not have"


@pytest.mark.parametrize(
    "group", ["ablation", "trainer", "logger", "callbacks", "debug", "launcher", "data", "model", "optim", "mode"]
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
