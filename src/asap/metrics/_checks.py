"""Input checks for the metric updates (cheap: shapes, and label values of small tensors)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_shape(name: str, x: Tensor, shape: Sequence[int | None]) -> None:
    """Raise ValueError unless `x` has `len(shape)` dims matching `shape` (None matches any size)."""
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape, strict=True)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"`{name}` must have shape {want}, got {tuple(x.shape)}")


def check_values(name: str, x: Tensor, allowed: Sequence[int]) -> None:
    """Raise ValueError unless every value of `x` is one of `allowed`."""
    ok = torch.isin(x, torch.tensor(list(allowed), dtype=x.dtype, device=x.device))
    if not bool(ok.all()):
        bad = x[~ok][0].item()
        raise ValueError(f"`{name}` must only hold values {list(allowed)}, found {bad}")


def check_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ValueError unless both tensors have the same batch size (dim 0)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"`{name_a}` has {a.shape[0]} rows but `{name_b}` has {b.shape[0]}")
