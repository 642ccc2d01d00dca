"""Patch Manipulation Modeling loss (ASAP eq. 10-12) with Hard Negative Patch selection (HNP).

Eq. 10: P_k = 1 if patch k overlaps the manipulated box, 0 if it is adjacent to such a patch (HNP), -1
(ignored) otherwise. Without HNP every non-box patch of a sample with a box is a negative.
Eq. 12: L_PMM = -(1/N') sum_{P_k in {0,1}} [P_k log C(i_k) + (1 - P_k) log(1 - C(i_k))], N' = number of
patches labelled 0 or 1 (over the whole batch). Ignored patches are dropped, not zeroed (the official code
zeroes them, so each still adds log 2). Official mode (`pmm_official_loss`) divides by all B x N cells instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asap.labels import IGNORE_PATCH as IGNORED
from asap.losses._common import float32_loss, masked_mean


def pmm_targets(patch_labels: Tensor, has_box: Tensor, hnp: bool = True) -> Tensor:
    """Eq. 10 targets (B, N) long in {1, 0, -1} from the data's patch_labels (B, N) and has_box (B,).

    hnp=True: the data's labels (1 box, 0 adjacent ring, -1 elsewhere). hnp=False: 1 box, 0 every other patch.
    Samples without a box are all -1 either way.
    """
    box = patch_labels == 1  # (B, N)
    targets = patch_labels.long() if hnp else box.long()  # (B, N)
    return torch.where(has_box.bool()[:, None], targets, torch.full_like(targets, IGNORED))


@float32_loss
def pmm_loss(patch_logits: Tensor, targets: Tensor) -> Tensor:
    """Eq. 12: BCE over patches with target 0/1, divided by their count N'; 0 (graph-connected) if N' = 0.

    patch_logits (B, N) (or (B, N, 1)) from the one-layer classifier, targets (B, N) from `pmm_targets`.
    """
    logits = patch_logits.float().reshape(targets.shape)  # (B, N)
    labelled = targets >= 0  # (B, N)
    bce = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0).float(), reduction="none")  # (B, N)
    return masked_mean(bce, labelled)


@float32_loss
def pmm_official_loss(patch_logits: Tensor, targets: Tensor, ignored_log2: bool = False) -> Tensor:
    """`loss.pmm_form=official`: ASAP's get_pre_patch_loss, BCE-with-logits averaged over all B x N cells.

    Ignored cells (target -1) add nothing to the sum but count in the mean. ignored_log2 (the official defect):
    their logit and target are zeroed instead, so each adds log 2 (with no gradient).
    """
    logits = patch_logits.float().reshape(targets.shape)  # (B, N)
    labelled = targets >= 0  # (B, N)
    bce = F.binary_cross_entropy_with_logits(
        logits * labelled, targets.clamp(min=0).float(), reduction="none"
    )  # (B, N); an ignored cell: BCE(0, 0) = log 2
    return (bce if ignored_log2 else bce * labelled).mean()
