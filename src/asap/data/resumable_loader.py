"""A training DataLoader that continues an interrupted epoch with the batches the uninterrupted run would have seen.

A plain DataLoader resumed in the middle of an epoch starts the epoch over with a new shuffle. This one remembers
the torch RNG state it drew the epoch's shuffle and worker seeds from; `DGM4DataModule` keeps that state, and the
number of batches served, in every mid-epoch checkpoint (its `state_dict`), and on resume the loader draws the same
shuffle and worker seeds again, skips the batches already trained on, and puts the model's RNG state back.

(Lightning's own hook for stateful loaders is not used: `configure_optimizers` reads
`trainer.estimated_stepping_batches`, which makes the train iterator before the loops are restored, so Lightning
never hands the state back. The datamodule's state is restored before that.)

With worker processes (`num_workers >= 1`) each worker is seeded from that draw and its augmentation draws repeat;
with `num_workers=0` the augmentation draws from the main generators between the model's steps, and the replay
puts those generators back to the checkpoint's states after skipping, so the next batch is drawn as it was.
Checkpoints taken at an epoch end carry no loader state (the RNG callback covers them).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader


class ResumableDataLoader(DataLoader):
    """DataLoader with `epoch_state()` / `resume_epoch()`: the epoch's starting RNG state and the batches served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch_rng: torch.Tensor | None = None  # torch RNG state just before this epoch's iterator was made
        self._served = 0  # batches handed out in this epoch
        self._skip = 0  # batches to skip in the next iterator (set by resume_epoch)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        skip, self._skip = self._skip, 0
        restored = _host_rng_states()  # as the checkpoint left them
        if skip:
            torch.set_rng_state(self._epoch_rng)  # the interrupted epoch's shuffle and worker seeds
        self._epoch_rng = torch.get_rng_state()
        iterator = super().__iter__()
        for _ in range(skip):
            next(iterator)
        if skip:
            _set_host_rng_states(restored)  # the skipped batches' draws are not the model's
        self._served = skip
        return self._count(iterator)

    def _count(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._served += 1
            yield batch

    def epoch_state(self) -> dict[str, Any]:
        """Where the current epoch stands ({} before the first batch)."""
        if self._epoch_rng is None or self._served == 0:
            return {}
        return {"epoch_rng_state": self._epoch_rng, "batches_served": self._served}

    def resume_epoch(self, state: dict[str, Any]) -> None:
        """Make the next iterator continue the epoch `state` describes."""
        if state:
            self._epoch_rng = state["epoch_rng_state"]
            self._skip = int(state["batches_served"])


def _host_rng_states() -> tuple[Any, Any, torch.Tensor]:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_host_rng_states(states: tuple[Any, Any, torch.Tensor]) -> None:
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])
