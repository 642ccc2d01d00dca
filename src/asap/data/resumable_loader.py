"""A training DataLoader that continues an interrupted epoch with the batches the uninterrupted run would have seen.

A plain DataLoader resumed in the middle of an epoch starts the epoch over with a new shuffle. This one records in a
`TrainPosition` the torch RNG state it drew the epoch's shuffle and worker seeds from and the batches it served;
`DGM4DataModule` keeps that in every mid-epoch checkpoint (its `state_dict`), and on resume the loader draws the
same shuffle and worker seeds again, skips the batches already trained on, and puts the generators back to the
checkpoint's states. Under DDP the distributed sampler shuffles by epoch instead: the position also carries the
epoch its first iterator after a resume belongs to (Lightning makes that iterator before it restores the epoch).

The position is one object shared by the datamodule and every copy of the loader Lightning makes (it rebuilds the
loader from its arguments to put in a distributed sampler). Lightning's own hook for stateful loaders is not used:
`configure_optimizers` reads `trainer.estimated_stepping_batches`, which makes the train iterator before the loops
are restored, so Lightning never hands the state back; the datamodule's state is restored before that.

With worker processes (`num_workers >= 1`) each worker is seeded from the epoch's draw and its augmentation draws
repeat; with `num_workers=0` the augmentation draws from the main generators between the model's steps, and the
replay puts those generators back after skipping, so the next batch is drawn as it was.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader


@dataclass
class TrainPosition:
    """Where the train loader stands in its epoch (shared by the datamodule and the loader's copies)."""

    epoch_rng: torch.Tensor | None = None  # torch RNG state just before this epoch's iterator was made
    served: int = 0  # batches handed out in this epoch
    skip: int = 0  # batches the next iterator skips (a resumed epoch)
    sampler_epoch: int | None = None  # the epoch of the next iterator, for a sampler that shuffles by epoch

    def epoch_state(self) -> dict[str, Any]:
        """Where the current epoch stands ({} before its first batch)."""
        if self.epoch_rng is None or self.served == 0:
            return {}
        return {"epoch_rng_state": self.epoch_rng, "batches_served": self.served}

    def resume(self, state: dict[str, Any], sampler_epoch: int | None = None) -> None:
        """The next iterator continues the epoch `state` describes ({}: a new epoch) as epoch `sampler_epoch`."""
        if state:
            self.epoch_rng, self.skip = state["epoch_rng_state"], int(state["batches_served"])
        self.sampler_epoch = sampler_epoch


class ResumableDataLoader(DataLoader):
    """DataLoader that records its place in the epoch in `position` and continues from it (module docstring)."""

    def __init__(self, *args: Any, position: TrainPosition | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = position if position is not None else TrainPosition()

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        position = self.position
        skip, position.skip = position.skip, 0
        if position.sampler_epoch is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(position.sampler_epoch)  # DistributedSampler: the resumed epoch's order
        position.sampler_epoch = None
        restored = _host_rng_states()  # as the checkpoint left them
        if skip:
            torch.set_rng_state(position.epoch_rng)  # the interrupted epoch's shuffle and worker seeds
        position.epoch_rng = torch.get_rng_state()
        iterator = super().__iter__()
        for _ in range(skip):
            next(iterator)
        if skip:
            _set_host_rng_states(restored)  # the skipped batches' draws are not the model's
        position.served = skip
        return self._count(iterator)

    def _count(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self.position.served += 1
            yield batch


def _host_rng_states() -> tuple[Any, Any, torch.Tensor]:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_host_rng_states(states: tuple[Any, Any, torch.Tensor]) -> None:
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])
