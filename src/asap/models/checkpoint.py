"""Reading checkpoint files safely (`torch.load(weights_only=True)`), with one clear error for bad files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from asap.errors import CheckpointError


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`; any failure becomes a CheckpointError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects that are not plain tensors/containers and is not loaded (weights_only=True). "
            f"If you trust it, re-save its state dict: torch.save(torch.load(p, weights_only=False)['model'], out)"
            f" [{str(err).splitlines()[0]}]"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, IndexError) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {err}") from err
