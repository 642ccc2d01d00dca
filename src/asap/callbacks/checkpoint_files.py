"""A run folder's checkpoint files: which one is newest (the one a resume or a stop message names)."""

from __future__ import annotations

from pathlib import Path

# a stop on a signal writes this (asap.callbacks.stop_on_signal); on equal times it is preferred to the epoch-end ones
INTERRUPTED_CHECKPOINT = "interrupted.ckpt"
_PREFERENCE = {INTERRUPTED_CHECKPOINT: 0, "last.ckpt": 1}


def checkpoints_newest_first(folder: Path) -> list[Path]:
    """`*.ckpt` in `folder`, newest first (an interrupted.ckpt, then last.ckpt, first among equal times)."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.ckpt") if p.is_file()]
    return sorted(files, key=lambda p: (-p.stat().st_mtime_ns, _PREFERENCE.get(p.name, 2), p.name))
