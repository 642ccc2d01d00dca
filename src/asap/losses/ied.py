"""Image-explanation detection loss of LMA (ASAP eq. 4-5).

Eq. 4: p(I, E) = sigmoid(MLP(delta F_mm^v + F_mm^t)), the probability that the pair is real.
Eq. 5: L_IED = -I(I, T) log p(I, E) - (1 - I(I, T)) log(1 - p(I, E)), I = 1 when neither image nor text is
manipulated. Computed as binary cross-entropy with logits in float32, mean over the batch.
Official mode (`ied_official_loss`): ASAP's 2-way head and cross-entropy, label 0 = real (models/ASAP.py l. 371-374).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from asap.losses._common import float32_loss


@float32_loss
def ied_loss(logits: Tensor, is_real: Tensor) -> Tensor:
    """Eq. 5 for logits (B,) (or (B, 1)) of the explanation-detection MLP and is_real (B,) bool/0-1."""
    if logits.numel() != is_real.numel():
        raise ValueError(f"ied_loss: {logits.numel()} logits for {is_real.numel()} labels")
    logits = logits.float().reshape(-1)  # (B,)
    return F.binary_cross_entropy_with_logits(logits, is_real.float().reshape(-1))


@float32_loss
def ied_official_loss(logits: Tensor, binary_label: Tensor) -> Tensor:
    """`loss.ied_form=official`: ASAP's loss_IED, cross-entropy of the 2-way head's logits (B, 2) against
    binary_label (B,) (0 = real image and text, 1 = manipulated; itm_labels_m, models/ASAP.py l. 371-374)."""
    return F.cross_entropy(logits.float(), binary_label.long())
