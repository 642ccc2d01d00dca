"""Manipulation-Guided Cross Attention (ASAP eq. 7-9) on the text-biased encoder's cross-attention maps.

A (eq. 7) is the head-averaged text->image attention of the MGCA layers, restricted to the word tokens (no
[CLS] row) and the image patches (no image [CLS] column): (B, L-1, N), the layout of `token_labels` x
`patch_labels`. MGCA is a loss only: no mask enters the attention itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from asap.losses import guidance_mask, mgca_loss, mgca_official_loss, official_guidance
from asap.models.attention import AttentionMap
from asap.models.config import DefectsConfig


def tokens_to_patches(attention: Tensor, text_len: int) -> Tensor:
    """(B, L', 1+N) map over the fused rows -> (B, text_len-1, N): drop [CLS] row, image [CLS] column, padding."""
    return attention[:, 1:text_len, 1:]


def mean_text_to_image_attention(probs: list[Tensor], text_len: int) -> Tensor:
    """Eq. 7 averaged over the MGCA layers: post-softmax maps (B, L', 1+N) -> (B, L-1, N)."""
    return torch.stack([tokens_to_patches(p, text_len) for p in probs]).mean(dim=0)


def mgca_term(
    maps: list[AttentionMap],
    token_labels: Tensor,
    patch_labels: Tensor,
    form: str = "paper",
    defects: DefectsConfig | None = None,
) -> Tensor:
    """Eq. 9 (form "paper", post-softmax A) or the official BCE on pre-softmax scores, averaged over layers.

    maps: per MGCA layer, (B, >=L, 1+N); token_labels (B, L-1); patch_labels (B, N). defects: the official MGCA
    defects to reproduce (form "official" only).
    """
    text_len = token_labels.shape[1] + 1
    if form == "paper":
        guidance, valid = guidance_mask(token_labels, patch_labels)  # eq. 8: (B, L-1, N) each
        terms = [mgca_loss(tokens_to_patches(m.probs, text_len), guidance, valid) for m in maps]
        return torch.stack(terms).mean()
    d = defects or DefectsConfig()
    guidance, valid = official_guidance(  # (B, R, N) each, R = L-1 (L with [CLS])
        token_labels, patch_labels, d.mgca_batch_tokens, d.mgca_cls_shift, d.mgca_padding
    )
    first = 0 if d.mgca_cls_shift else 1  # the [CLS] row enters with the shift
    terms = [mgca_official_loss(m.scores[:, first:text_len, 1:], guidance, valid) for m in maps]
    return torch.stack(terms).mean()
