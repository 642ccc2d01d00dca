"""Every experiment, sweep preset and config group composes; each default is stated once; bad values give clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from asap.conf import SCHEMAS
from asap.errors import ConfigError
from asap.losses import LossWeights
from asap.models.config import ASAPConfig
from asap.pipeline.resume import ResumePoint, check_same_run
from helpers import run_script

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DGM4 = "data.root=/tmp/dgm4"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str], name: str = "train", conf: Path = CONF):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


def _built(cfg: Any) -> ASAPConfig:
    """The typed config the LightningModule is built from (as `build_lit_module` does)."""
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "loss", "ablation", "optim")}
    return ASAPConfig.from_plain(**plain)


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """`{dotted.key: value}` of a nested dict's leaves."""
    if isinstance(node, dict) and (node or not prefix):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= _leaves(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): node}


def _body(path: Path) -> dict[str, Any]:
    """A config file's own values (its defaults list left out)."""
    values = yaml.safe_load(path.read_text()) or {}
    values.pop("defaults", None)
    return values


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiments_compose(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}", DGM4])
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    assert resolved["image_size"] == cfg.data.image_size
    assert cfg.task_name == experiment
    _built(cfg)  # the model / loss / ablation / optim it composes are valid


def test_the_paper_experiments_differ_from_the_schema_only_by_momentum_and_mode() -> None:
    """asap_paper is the schema (the paper's model, loss, ablation, optimiser) with momentum; asap_full adds
    official mode and the official optimiser."""
    paper, full = (_built(_compose([f"experiment={e}", DGM4])) for e in ("asap_paper", "asap_full"))
    # asap_base names BertConfig's own defaults (bert-base) in `bert`; the schema leaves them to BertConfig
    bert_base = {"text_encoder": {"bert": paper.model.text_encoder.bert}}
    assert paper == ASAPConfig.from_plain({**bert_base, "momentum": {"enabled": True}}, {}, {}, {})
    assert full.ablation == paper.ablation and full.model.momentum == paper.model.momentum
    assert (full.loss.contrastive_form, full.optim.schedule) == ("official", "official")


def test_the_full_setup_needs_no_gradient_accumulation() -> None:
    """asap_full's global batch is its per-device batch times its devices (the paper's 32 x 8)."""
    cfg = _compose(["experiment=asap_full", DGM4])
    devices = cfg.trainer.devices * cfg.trainer.num_nodes
    assert cfg.global_batch_size == cfg.data.batch_size * devices
    assert cfg.trainer.precision == "32-true" and cfg.trainer.strategy == "ddp"  # the official code's fp32


@pytest.mark.parametrize("experiment", ["asap_full", "hammer_baseline"])
def test_the_reproduction_experiments_run_in_official_mode(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}", DGM4])
    assert cfg.hydra.runtime.choices.mode == "official" and cfg.hydra.runtime.choices.optim == "official"
    built = _built(cfg)
    baseline = experiment == "hammer_baseline"
    assert all(
        getattr(built.ablation, k) != baseline for k in ("caption", "explanation", "ied", "mgca", "pmm")
    )
    assert built.model.vision_block == ("hammer" if baseline else "asap")  # HAMMER's block in its baseline


def test_the_embedded_default_is_the_smoke_experiment_in_paper_mode() -> None:
    """`make train` (no overrides) is experiment=smoke: paper mode, no momentum, one CPU, no accumulation."""
    default, smoke = _compose([]), _compose(["experiment=smoke"])
    assert all(default[k] == smoke[k] for k in default if k != "hydra") and default.keys() == smoke.keys()
    assert default.hydra.runtime.choices.mode == "paper" and default.hydra.runtime.choices.optim == "paper"
    assert not default.model.momentum.enabled and default.global_batch_size is None
    assert default.trainer.accelerator == "cpu"


def test_command_line_group_beats_experiment() -> None:
    cfg = _compose(["experiment=asap_full", "ablation=baseline", DGM4])
    assert not cfg.ablation.mgca


@pytest.mark.parametrize("experiment", ["smoke", "asap_full", "asap_paper"])
@pytest.mark.parametrize("sweep", _options("sweep"))
def test_sweep_presets_compose_and_sweep_known_keys(sweep: str, experiment: str) -> None:
    cfg = _compose([f"sweep={sweep}", f"experiment={experiment}", DGM4])
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.sweep_name == sweep
    params = cfg.hydra.sweeper.params
    assert len(params) == 1
    ((key, values),) = params.items()
    if key == "ablation":
        assert set(values.split(",")) <= set(_options("ablation"))
    else:
        assert OmegaConf.select(cfg, key) is not None, f"{sweep} sweeps {key}, which the config does not have"
    first_job = _compose([f"experiment={experiment}", f"{key}={values.split(',')[0]}", DGM4])
    _built(first_job)  # the swept values type-check and build


@pytest.mark.parametrize(
    "group",
    ["ablation", "trainer", "logger", "callbacks", "debug", "launcher", "data", "model", "optim", "mode"],
)
def test_every_group_option_composes(group: str) -> None:
    for option in _options(group):
        cfg = _compose([f"{group}={option}", DGM4] if group != "data" else [f"data={option}"])
        if group in SCHEMAS:  # every option extends its group's schema: its keys and types are checked
            assert OmegaConf.get_type(cfg[group]) is SCHEMAS[group], f"{group}/{option}.yaml lacks `- schema`"


def test_eval_config_composes() -> None:
    cfg = _compose(["ckpt_path=/tmp/x.ckpt"], name="eval")
    assert cfg.split == "test" and cfg.ckpt_path == "/tmp/x.ckpt"
    assert OmegaConf.get_type(cfg.model) is SCHEMAS["model"]


# ---------------------------------------------------------------------------------------------------- stated once


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_no_preset_restates_a_schema_default(group: str) -> None:
    """Each value a conf/<group>/*.yaml sets differs from the dataclass default it overrides."""
    defaults = _leaves(OmegaConf.to_container(OmegaConf.structured(SCHEMAS[group])))
    for option in _options(group):
        for key, value in _leaves(_body(CONF / group / f"{option}.yaml")).items():
            assert defaults.get(key, "<absent>") != value, f"{group}/{option}.yaml restates {key}: {value!r}"


def _without_body(tmp_path: Path, relative: str) -> Path:
    """A copy of conf/ in which `relative` keeps its package line and defaults list but sets nothing."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    text = (CONF / relative).read_text()
    header = "# @package _global_\n" if text.startswith("# @package _global_") else ""
    defaults = (yaml.safe_load(text) or {}).get("defaults")
    (conf / relative).write_text(header + (yaml.safe_dump({"defaults": defaults}) if defaults else ""))
    return conf


@pytest.mark.parametrize(
    ("relative", "overrides"),
    [(f"experiment/{e}.yaml", [f"experiment={e}"]) for e in _options("experiment")]
    + [(f"mode/{m}.yaml", [f"mode={m}", "~experiment"]) for m in _options("mode")],
)
def test_no_experiment_or_mode_restates_what_its_groups_give(
    relative: str, overrides: list[str], tmp_path: Path
) -> None:
    """Every value an experiment (or mode) sets changes the config its groups (and base experiment) compose."""
    body = _leaves(_body(CONF / relative))
    with_body = OmegaConf.to_container(_compose([*overrides, DGM4]), resolve=False)
    without = OmegaConf.to_container(_compose([*overrides, DGM4], conf=_without_body(tmp_path, relative)))
    restated = {k: v for k, v in body.items() if _leaves(without).get(k, "<absent>") == v}
    assert not restated, f"{relative} restates what its groups already give: {restated}"
    assert all(_leaves(with_body)[k] == v for k, v in body.items())  # and what it sets arrives


# ---------------------------------------------------------------------------------------------------- errors


def test_the_schema_rejects_a_bad_type_and_an_unknown_key_at_compose_time() -> None:
    with pytest.raises(ConfigCompositionException, match=r"loss\.alpha=abc") as bad_type:
        _compose(["loss.alpha=abc"])
    assert "'abc'" in str(bad_type.value.__cause__) and "full_key: loss.alpha" in str(
        bad_type.value.__cause__
    )
    with pytest.raises(ConfigCompositionException, match=r"Could not override 'loss\.alfa'") as unknown:
        _compose(["loss.alfa=0.1"])
    assert "Key 'alfa' not in 'LossConfig'" in str(unknown.value.__cause__)
    # `+key=` forces a key into any node; building the module then names it
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['alfa'\] in `loss`"):
        _built(_compose(["+loss.alfa=0.1"]))


def test_the_flat_loss_keys_of_old_checkpoints_still_build() -> None:
    """Saved hyper-parameters are plain dicts of the composed shape; a missing key takes the schema's default."""
    config = ASAPConfig.from_plain({}, {"alpha": 0.5, "mgca": {"form": "official"}}, {"pmm": False}, {})
    assert config.loss.alpha == 0.5 and config.loss.lambda_ == LossWeights().lambda_
    assert config.loss.loss_weights().of("mgca") == 0.5 and config.loss.mgca.form == "official"
    with pytest.raises(ConfigError, match=r"`loss.alpha` must be float, got 'x'"):
        ASAPConfig.from_plain({}, {"alpha": "x"}, {}, {})


def test_a_run_saved_before_a_default_was_composed_resumes(tmp_path: Path) -> None:
    """A checkpoint whose hyper-parameters lack keys the schema now composes (their defaults) is the same run."""
    cfg = _compose([])
    now = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "loss", "ablation", "optim")}
    saved = {**now, "optim": {k: v for k, v in now["optim"].items() if k not in ("rest_lr", "warmup_lr")}}
    saved["model"] = {**now["model"], "init_std": 0.05}  # stated before it was derived from the width (128: 0.05)
    point = ResumePoint(path=tmp_path / "last.ckpt", epoch=0, global_step=1, hyper_parameters=saved)
    check_same_run(point, now, tmp_path)
    with pytest.raises(Exception, match=r"model.init_std: 0.05 -> 0.07"):
        check_same_run(point, {**now, "model": {**now["model"], "init_std": 0.07}}, tmp_path)
    with pytest.raises(Exception, match=r"optim.lr: 0.001 -> 0.002"):
        check_same_run(point, {**now, "optim": {**now["optim"], "lr": 2e-3}}, tmp_path)


def test_unknown_option_lists_the_valid_choices() -> None:
    run = run_script("train.py", "ablation=nonsense")
    assert run.returncode != 0
    assert "Could not find 'ablation/nonsense'" in run.stderr
    assert "full" in run.stderr and "baseline" in run.stderr  # the valid choices are listed
    assert "Traceback" not in run.stderr


def test_help_lists_the_groups() -> None:
    run = run_script("train.py", "--help")
    assert run.returncode == 0
    for group in ("ablation", "experiment", "sweep", "model", "data", "logger", "trainer", "mode"):
        assert f"{group}:" in run.stdout
