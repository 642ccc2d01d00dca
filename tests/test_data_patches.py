"""Patch labels (paper eq. 10, HNP ring) against hand-made boxes."""

from __future__ import annotations

import pytest
import torch

from asap.data.patches import patch_labels


def _grid(rows: list[str]) -> torch.Tensor:
    """'1' box, '0' ring, '.' ignored -> flat labels."""
    return torch.tensor([{"1": 1, "0": 0, ".": -1}[c] for row in rows for c in row])


def test_box_inside_one_patch() -> None:
    # 32px image, 8px patches: 4x4 grid; box x 9..15, y 17..23 lies in patch (row 2, col 1)
    expected = _grid(["....", ".0..", "010.", ".0.."])
    assert torch.equal(patch_labels((9, 17, 6, 6), 32, 8), expected)


def test_box_over_several_patches_with_4_neighbour_ring() -> None:
    # 48px image, 8px patches: 6x6 grid; box x 10..26, y 8..15.5 covers cols 1-3 of row 1 only
    expected = _grid([".000..", "01110.", ".000..", "......", "......", "......"])
    assert torch.equal(patch_labels((10, 8, 16, 7.5), 48, 8), expected)


def test_box_touching_a_patch_edge_does_not_overlap_it() -> None:
    # box x 8..16 exactly covers col 1; the strict test keeps cols 0 and 2 out
    labels = patch_labels((8, 8, 8, 8), 32, 8).view(4, 4)
    assert labels[1].tolist() == [0, 1, 0, -1]
    assert labels[:, 1].tolist() == [0, 1, 0, -1]


def test_box_at_the_image_corner_and_full_image() -> None:
    corner = patch_labels((0, 0, 3, 3), 16, 8).view(2, 2)
    assert corner.tolist() == [[1, 0], [0, -1]]
    assert torch.equal(patch_labels((0, 0, 16, 16), 16, 8), torch.ones(4, dtype=torch.long))


def test_no_box_ignores_every_patch() -> None:
    labels = patch_labels(None, 256, 16)
    assert labels.shape == (256,) and bool((labels == -1).all())


def test_image_size_must_be_a_multiple_of_the_patch_size() -> None:
    with pytest.raises(ValueError, match="multiple of patch_size"):
        patch_labels(None, 60, 8)


def test_float_noise_at_a_patch_edge_adds_no_patches() -> None:
    # 16 + 4e-15 is 16 up to resize rounding: cols 0-1 only, like the exact box
    noisy = patch_labels((0.0, 0.0, 16 + 4e-15, 8.0), 32, 8)
    assert torch.equal(noisy, patch_labels((0, 0, 16, 8), 32, 8))
    assert noisy.view(4, 4)[0].tolist() == [1, 1, 0, -1]
