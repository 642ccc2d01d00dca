"""The conversion job behind `src/convert.py`: an official state dict (ALBEF, HAMMER, ASAP) <-> our checkpoint.

Import builds our model from the experiment that matches the source (`PRESETS`, then the user's Hydra overrides),
fills it through the one key map (`asap.models.official_keys`) and writes a checkpoint that `src/eval.py` and
`src/predict.py` read (weights and the model / loss / ablation / optim config, as src/train.py writes them).
Export (`--to-official`) writes our checkpoint's weights in the official layout, as `{"model": state_dict}`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from rich.table import Table

from asap.errors import ConversionError, UserError
from asap.models.official_keys import KeyReport, export_official, import_official, official_state_dict
from asap.utils.console import console
from asap.utils.paths import project_root

log = logging.getLogger(__name__)

# the experiment each official model matches; momentum on, since every official checkpoint holds the momentum copies
PRESETS = {
    "albef": ["experiment=asap_full", "model.momentum.enabled=true"],  # a starting point for training
    "hammer": ["experiment=hammer_baseline", "model.momentum.enabled=true"],
    "asap": ["experiment=asap_full", "model.momentum.enabled=true"],
}
REQUIRE_EVERY_TARGET = {
    "albef": False,
    "hammer": True,
    "asap": True,
}  # ALBEF has no heads: they stay initialised


def compose_config(source: str, overrides: list[str]) -> DictConfig:
    """The train config of `source`'s experiment with `overrides` (model size, tokenizer, ...) on top."""
    import asap.conf  # noqa: F401  (the ${...} resolvers and group schemas of conf/)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
            return compose(config_name="train", overrides=[*PRESETS[source], *overrides])
    except HydraException as err:  # an unknown option, key or a value of the wrong type: one line, no traceback
        why = f" ({str(err.__cause__).splitlines()[0]})" if err.__cause__ else ""
        raise UserError(f"the overrides {overrides} cannot be used: {err}{why}") from err


def import_checkpoint(
    source: str, src: Path, dst: Path, overrides: list[str], allow_missing: bool = False
) -> KeyReport:
    """Official `src` -> our checkpoint `dst`; raises ConversionError (nothing written) on any unmapped tensor."""
    from asap.models import ASAPLitModule
    from asap.models.checkpoint import read_checkpoint
    from asap.models.text_encoder import bert_config
    from asap.pipeline.common import container

    cfg = compose_config(source, overrides)
    hparams = {k: container(cfg[k]) for k in ("model", "loss", "ablation", "optim")}
    module = ASAPLitModule(**hparams, load_pretrained=False)
    state = _official_state(read_checkpoint(src), src)
    text = module.model.cfg.text_encoder
    ours = module.model.state_dict()
    values, report = import_official(
        state, source, ours, text.text_layers, bert_config(text).num_hidden_layers
    )
    print_report(report, src, dst)
    _check(report, allow_missing, REQUIRE_EVERY_TARGET[source], src)
    module.model.load_state_dict(values, strict=False)
    save_checkpoint(module, dst, converted_from={"source": source, "path": str(src), **report.counts()})
    log.info("wrote %s (%s layout -> experiment %s)", dst, source, PRESETS[source][0].split("=")[1])
    return report


def save_checkpoint(module: Any, dst: Path, **extra: Any) -> Path:
    """`module`'s weights and config as the checkpoint `ASAPLitModule.load_from_checkpoint_safely` reads."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save({**checkpoint, "pytorch-lightning_version": lightning.__version__, **extra}, dst)
    return dst


def export_checkpoint(source: str, src: Path, dst: Path, allow_missing: bool = False) -> KeyReport:
    """Our checkpoint `src` -> `{"model": state_dict}` in `source`'s official layout at `dst`."""
    from asap.inference.loading import load_module
    from asap.models.text_encoder import bert_config

    module = load_module(src)
    text = module.model.cfg.text_encoder
    state, report = export_official(
        module.model.state_dict(), source, text.text_layers, bert_config(text).num_hidden_layers
    )
    print_report(report, src, dst)
    _check(report, allow_missing, False, src)
    if module.model.momentum is None:
        log.warning(
            "no momentum copies or queues (model.momentum.enabled=false): the official code keeps its own"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, dst)
    log.info("wrote %s in the official %s layout", dst, source)
    return report


def _official_state(checkpoint: Any, src: Path) -> dict[str, torch.Tensor]:
    from asap.errors import CheckpointError

    try:
        return official_state_dict(checkpoint, str(src))
    except ValueError as err:
        raise CheckpointError(str(err)) from err


def _check(report: KeyReport, allow_missing: bool, missing_is_problem: bool, src: Path) -> None:
    problems = report.problems(missing_is_problem)
    if problems and not allow_missing:
        listing = "\n  ".join(problems)
        raise ConversionError(
            f"{src}: {len(problems)} tensor(s) do not map onto the {report.source} layout (no target, or another "
            f"shape); fix the overrides (model size, layers, momentum; ASAP: the official mode) or pass "
            f"--allow-missing:\n  {listing}"
        )
    if problems:
        log.warning("--allow-missing: %d tensor(s) not converted (listed above)", len(problems))


def print_report(report: KeyReport, src: Path, dst: Path) -> None:
    """Counts, then every key with what happened to it: a rich table on a terminal, plain lines otherwise."""
    counts = ", ".join(f"{n} {name}" for name, n in report.counts().items())
    console.print(f"[bold]{report.direction} {report.source}[/]: {src} -> {dst}: {counts}", soft_wrap=True)
    rows = [("mapped", a, b) for a, b in report.mapped] + [("derived", a, b) for a, b in report.derived]
    rows += [("dropped", a, b) for a, b in report.dropped] + [("UNMAPPED", a, b) for a, b in report.unmapped]
    rows += [("MISSING", key, "no source tensor") for key in report.missing]
    if console.is_terminal:
        table = Table("status", "from", "to / why", title="key report")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:  # complete lines, never cut to a terminal width
        for status, a, b in rows:
            print(f"{status:9s} {a}  ->  {b}")
