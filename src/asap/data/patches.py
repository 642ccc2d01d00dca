"""Patch labels for Patch Manipulation Modeling with Hard Negative Patch selection (paper eq. 10).

On the (S/p)x(S/p) patch grid of the transformed image: 1 for patches that overlap the manipulated-face box, 0 for
the ring of patches 4-adjacent to those (the hard negatives), -1 (ignored) elsewhere and everywhere when there is no
box. The overlap test is the official one (strict, in transformed-image pixels), with a 1e-6 px tolerance so
float noise from the resize (e.g. 6.4 + 25.6 = 32.000000000000004) does not add a row of patches the box only
touches.
"""

from __future__ import annotations

import torch

from asap.labels import IGNORE_PATCH

EPS = 1e-6  # px


def patch_grid(image_size: int, patch_size: int) -> int:
    """Patches per side; the image size must be a multiple of the patch size."""
    if image_size <= 0 or patch_size <= 0 or image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a positive multiple of patch_size {patch_size}")
    return image_size // patch_size


def patch_labels(
    box_xywh: tuple[float, float, float, float] | None, image_size: int, patch_size: int
) -> torch.Tensor:
    """Box `(x, y, w, h)` in pixels of the `image_size`² image (or None) -> labels (N,), row-major, N = (S/p)²."""
    grid = patch_grid(image_size, patch_size)
    labels = torch.full((grid, grid), IGNORE_PATCH, dtype=torch.long)  # (G, G)
    if box_xywh is None:
        return labels.flatten()
    x, y, w, h = box_xywh
    start = torch.arange(grid, dtype=torch.float64) * patch_size  # (G,) patch left/top edges
    cols = (start < x + w - EPS) & (start + patch_size > x + EPS)  # (G,)
    rows = (start < y + h - EPS) & (start + patch_size > y + EPS)  # (G,)
    positive = rows[:, None] & cols[None, :]  # (G, G)
    ring = torch.zeros_like(positive)
    ring[:-1, :] |= positive[1:, :]
    ring[1:, :] |= positive[:-1, :]
    ring[:, :-1] |= positive[:, 1:]
    ring[:, 1:] |= positive[:, :-1]
    labels[ring & ~positive] = 0
    labels[positive] = 1
    return labels.flatten()
