"""The four DGM4 task losses (ASAP supplementary §6, following HAMMER's models/HAMMER.py).

§6.1 L_IMG = ||sigmoid(D_v(i_pat)) - y_box||_1 + L_GIoU, over every sample as HAMMER trains (no box: the zero box) or
over the samples with a manipulated face box (`loss.box_samples`).
§6.2 L_BIC = H(C_b(M_it), y_bin), cross-entropy. §6.3 L_MLC = H(C_m(M_it), y_mul), binary cross-entropy with
logits over the 4 types (HAMMER). §6.4 L_TMG = (1 - alpha) L_tok + alpha L_tok^mom, token cross-entropy plus
distillation from the momentum token detector: -sum soft * log_softmax, mean over non-padding tokens (HAMMER).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou_loss

from asap.labels import IGNORE_INDEX
from asap.losses._common import float32_loss, masked_mean


@float32_loss
def binary_loss(logits: Tensor, binary_label: Tensor) -> Tensor:
    """§6.2: cross-entropy of logits (B, 2) against binary_label (B,) (1 = fake)."""
    return F.cross_entropy(logits.float(), binary_label.long())


@float32_loss
def multilabel_loss(logits: Tensor, multilabel: Tensor) -> Tensor:
    """§6.3: BCE-with-logits of logits (B, 4) against multilabel (B, 4) [FS, FA, TS, TA], mean over all."""
    return F.binary_cross_entropy_with_logits(logits.float(), multilabel.float())


@float32_loss
def box_loss(box_pred: Tensor, box_target: Tensor, has_box: Tensor | None) -> tuple[Tensor, Tensor]:
    """§6.1 as HAMMER's get_bbox_loss: (L1, GIoU) for box_pred, box_target (B, 4) cx, cy, w, h in [0, 1].

    L1 is summed over the 4 coordinates; both are summed over the samples with has_box (B,) True and divided
    by their number (0, graph-connected, when there is none). has_box=None counts every sample, as HAMMER's
    training call does (no-box samples then regress to the all-zero target). Predicted w, h are clamped at 0
    so that a degenerate box never yields x2 < x1.
    """
    pred, target = box_pred.float(), box_target.float()  # (B, 4)
    keep = torch.ones_like(pred[:, 0], dtype=torch.bool) if has_box is None else has_box.bool()  # (B,)
    l1 = F.l1_loss(pred, target, reduction="none").sum(dim=1)  # (B,)
    pred = torch.cat([pred[:, :2], pred[:, 2:].clamp(min=0.0)], dim=1)
    target = torch.cat([target[:, :2], target[:, 2:].clamp(min=0.0)], dim=1)
    giou = generalized_box_iou_loss(
        box_convert(pred, "cxcywh", "xyxy"), box_convert(target, "cxcywh", "xyxy")
    )
    return masked_mean(l1, keep), masked_mean(giou, keep)  # each: sum over kept / count


@float32_loss
def token_loss(
    token_logits: Tensor,
    token_labels: Tensor,
    soft_targets: Tensor | None = None,
    distill_weight: float = 0.4,
) -> Tensor:
    """§6.4: cross-entropy of token_logits (B, Lt, 2) against token_labels (B, Lt) (1/0, -100 ignored).

    With soft_targets (B, Lt, 2) (momentum-model probabilities): (1 - w) CE + w * mean over non-padding tokens
    of -sum(soft * log_softmax(logits)), w = distill_weight. 0 (graph-connected) when every token is padding.
    """
    logits = token_logits.float().flatten(0, 1)  # (B*Lt, 2)
    labels = token_labels.long().flatten()  # (B*Lt,)
    keep = labels != IGNORE_INDEX  # (B*Lt,)
    ce = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")  # (B*Lt,)
    loss = masked_mean(ce, keep)
    if soft_targets is None:
        return loss
    soft = soft_targets.float().flatten(0, 1)  # (B*Lt, 2)
    distill = -(soft * F.log_softmax(logits, dim=-1)).sum(dim=-1)  # (B*Lt,)
    return (1.0 - distill_weight) * loss + distill_weight * masked_mean(distill, keep)
