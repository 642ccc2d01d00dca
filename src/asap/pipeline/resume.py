"""Automatic resume: a run started again in the same folder continues from that folder's newest intact checkpoint.

The run folder is the same when the command is given the same `hydra.run.dir` (or a sweep the same
`hydra.sweep.dir`), and on SLURM for a requeued job (the launcher re-runs the same job in the same folder). The
newest checkpoint by modification time is read in full (`torch.load(weights_only=True)`); one that cannot be read
(torn by a crash, a full disk) is named and the one before it is used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asap.callbacks.checkpoint_files import checkpoints_newest_first
from asap.errors import CheckpointError, UserError
from asap.models.checkpoint import read_checkpoint

log = logging.getLogger(__name__)

TRAINING_STATE_KEYS = ("state_dict", "optimizer_states", "loops", "global_step", "epoch")


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint to resume from, what it holds, and the newer ones that could not be read."""

    path: Path
    epoch: int
    global_step: int
    hyper_parameters: Mapping[str, Any]
    unreadable: tuple[tuple[Path, str], ...] = ()


def find_resume_point(folder: Path) -> ResumePoint | None:
    """The newest checkpoint in `folder` that reads whole and holds a training state; None when there is none."""
    unreadable: list[tuple[Path, str]] = []
    for path in checkpoints_newest_first(folder):
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as err:
            unreadable.append((path, str(err)))
            continue
        missing = [k for k in TRAINING_STATE_KEYS if not (isinstance(checkpoint, dict) and k in checkpoint)]
        if missing:
            unreadable.append((path, f"{path} holds no training state (no {', '.join(missing)})"))
            continue
        return ResumePoint(
            path=path,
            epoch=int(checkpoint["epoch"]),
            global_step=int(checkpoint["global_step"]),
            hyper_parameters=checkpoint.get("hyper_parameters") or {},
            unreadable=tuple(unreadable),
        )
    if unreadable:
        listed = "\n  ".join(reason for _, reason in unreadable)
        raise UserError(f"no checkpoint in {folder} can be read, so the run cannot resume:\n  {listed}")
    return None


def check_same_run(point: ResumePoint, hparams: Mapping[str, Any], folder: Path) -> None:
    """A folder's checkpoints belong to the run configured now: another model / loss / ablation / optim is refused."""
    saved, now = _flatten(_with_defaults(point.hyper_parameters)), _flatten(_with_defaults(hparams))
    different = sorted(k for k in saved.keys() | now.keys() if saved.get(k, "<absent>") != now.get(k, "<absent>"))
    if different:
        shown = ", ".join(
            f"{k}: {saved.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}" for k in different[:8]
        )
        more = f" (and {len(different) - 8} more)" if len(different) > 8 else ""
        raise UserError(
            f"{folder} holds checkpoints of a run with another configuration ({shown}{more}); resuming would mix "
            f"the two. Start this one in a new folder (leave hydra.run.dir out), or give the same overrides as "
            f"the run that wrote {point.path.name}."
        )


def _with_defaults(hparams: Mapping[str, Any]) -> Mapping[str, Any]:
    """The model / loss / ablation / optim hyper-parameters with every schema default filled in, so a run saved
    before a key was stated (or its default) compares equal; as given when they do not build (not ours)."""
    from asap.errors import ConfigError
    from asap.models.config import ASAPConfig

    try:
        config = ASAPConfig.from_plain(
            **{k: hparams.get(k) or {} for k in ("model", "loss", "ablation", "optim")}
        )
    except (ConfigError, TypeError, ValueError):
        return hparams
    config.model.init_std = config.model.new_parts_std  # a saved number and the derived default that equals it
    return dataclasses.asdict(config)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): node}
