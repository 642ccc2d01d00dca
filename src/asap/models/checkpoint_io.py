"""Checkpoint files written whole or not at all, on any local filesystem.

Lightning writes a checkpoint through an fsspec transaction: into a temporary file in the system temp folder, then
`shutil.move` to its place. When the run folder is on another filesystem than `$TMPDIR` (a cluster: node-local
/tmp, the runs on NFS or Lustre), that move is a copy over the old file, and a job killed during it leaves a torn
checkpoint where a whole one was. Here the temporary file sits beside the target, is flushed to disk, and
`os.replace` puts it in place (atomic within one filesystem), so the old file stays whole until the new one is.
Remote paths (`s3://...`) keep Lightning's way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose local writes go to `.<name>.tmp-<pid>` beside the target, then `os.replace`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with partial.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return None
