"""The global batch of one optimiser step: data.batch_size per device x devices x gradient-accumulation steps.

The paper trains 32 pairs on each of 8 GPUs (HAMMER's and ASAP's train.sh); `global_batch_size: 256` keeps those
256 samples per optimiser step on fewer devices by accumulating gradients (Lightning `accumulate_grad_batches`).
"""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from asap.errors import UserError

log = logging.getLogger(__name__)


def accumulation_steps(global_batch: int, per_device: int, world_size: int) -> int:
    """global_batch / (per_device x world_size); a UserError when that is not a whole number >= 1."""
    per_step = per_device * world_size
    if global_batch < 1 or global_batch % per_step:
        raise UserError(
            f"global_batch_size={global_batch} is not a multiple of data.batch_size={per_device} x "
            f"{_plural(world_size, 'device')} = {per_step}: change global_batch_size, data.batch_size or "
            "trainer.devices so that it divides (global_batch_size=null: no accumulation)"
        )
    return global_batch // per_step


def describe(global_batch: int, per_device: int, world_size: int, steps: int) -> str:
    """e.g. "global batch 256 = 32 per device x 1 device x 8 accumulation steps"."""
    return (
        f"global batch {global_batch} = {per_device} per device x {_plural(world_size, 'device')} x "
        f"{_plural(steps, 'accumulation step')}"
    )


def apply_global_batch(trainer: L.Trainer, global_batch: int | None, per_device: int) -> None:
    """Set the trainer's gradient accumulation so one optimiser step sees `global_batch` samples; say so once.

    global_batch None: leave the trainer as configured (one step per batch of each device, unless
    trainer.accumulate_grad_batches says otherwise).
    """
    if global_batch is None:
        return
    world_size = trainer.world_size
    steps = accumulation_steps(global_batch, per_device, world_size)
    if trainer.accumulate_grad_batches not in (1, steps):
        raise UserError(
            f"trainer.accumulate_grad_batches={trainer.accumulate_grad_batches} contradicts "
            f"global_batch_size={global_batch} ({describe(global_batch, per_device, world_size, steps)}): set one"
        )
    trainer.accumulate_grad_batches = steps
    _announce(describe(global_batch, per_device, world_size, steps))


@rank_zero_only
def _announce(message: str) -> None:
    log.info(message)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
