"""Helpers shared by the loss files: float32 computation and masked means that are 0 (not NaN) when empty."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")


def float32_loss(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` with autocast disabled on the device of its first tensor argument (losses stay float32)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` over `mask` (same shape); a graph-connected 0 when the mask is empty."""
    values = torch.where(mask, values, torch.zeros_like(values))  # drop masked-out entries (even inf/NaN)
    return values.sum() / mask.sum().clamp(min=1)
