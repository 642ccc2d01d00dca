"""Manipulation-Guided Cross Attention loss (ASAP eq. 7-9) and the official-code variant.

Eq. 7: A = softmax(W_t E_t(T) x W_v E_v(I) / sqrt(h)), text tokens attending to image patches (averaged over
heads here). Eq. 8: G(i, j) = 1 if token i or patch j is manipulated, else 0 — built per sample (the official
code applies every sample's manipulated-token columns to the whole batch: not repeated).
Eq. 9: L_MGCA = -(1/|A|) sum_{i,j} G(i, j) log A(i, j), |A| = number of (valid) elements.

Layout: rows are the text tokens without [CLS] (as `token_labels`), columns the N image patches without the
image [CLS]; the caller drops both before calling (`asap.models.attention.tokens_to_patches`, beside eq. 7's map;
`asap.models.objective.mgca_term` picks the form and averages over the MGCA layers). Padding tokens are excluded
from the sum and from |A|.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asap.labels import IGNORE_INDEX
from asap.losses._common import float32_loss, masked_mean

ATTN_EPS = 1e-8  # A is clamped to [eps, 1] before the log


def guidance_mask(token_labels: Tensor, patch_labels: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 8 per sample. token_labels (B, Lt) 1/0/-100, patch_labels (B, N) 1/0/-1 -> G (B, Lt, N), valid."""
    token_fake = token_labels == 1  # (B, Lt)
    patch_fake = patch_labels == 1  # (B, N)
    G = (token_fake[:, :, None] | patch_fake[:, None, :]).float()  # (B, Lt, N)
    valid = (token_labels != IGNORE_INDEX)[:, :, None].expand_as(G)  # (B, Lt, N) real tokens only
    return G, valid


def official_guidance(
    token_labels: Tensor,
    patch_labels: Tensor,
    batch_tokens: bool = False,
    cls_shift: bool = False,
    padding: bool = False,
) -> tuple[Tensor, Tensor]:
    """Eq. 8 as `mgca.form=official` builds it, each official defect a switch -> G (B, R, N), valid (B, R, N).

    Rows: the word tokens (R = L-1, as `token_labels`); with `cls_shift` every position of the text, [CLS] first
    (R = L), each token's mark one row up (ASAP's attentionMapGT spans text_embeds.size(1) columns while its
    positions index the tokens without [CLS]). `batch_tokens`: every sample's manipulated tokens marked in every
    sample. `padding`: padding rows count. Columns: the N image patches, 1 where `patch_labels` == 1.
    """
    token_fake = token_labels == 1  # (B, L-1)
    if batch_tokens:
        token_fake = token_fake.any(dim=0, keepdim=True).expand_as(token_fake)  # (B, L-1)
    real = token_labels != IGNORE_INDEX  # (B, L-1)
    if cls_shift:
        column = torch.zeros_like(real[:, :1])  # (B, 1)
        token_fake = torch.cat([token_fake, column], dim=1)  # (B, L): mark of token k+1 on row k
        real = torch.cat([~column, real], dim=1)  # (B, L): [CLS] is a real row
    if padding:
        real = torch.ones_like(real)
    G = (token_fake[:, :, None] | (patch_labels == 1)[:, None, :]).float()  # (B, R, N)
    return G, real[:, :, None].expand_as(G)


def _head_mean(x: Tensor) -> Tensor:
    """(B, H, Lt, N) -> (B, Lt, N): mean over heads (eq. 7 per head); (B, Lt, N) passes through."""
    return x.float().mean(dim=1) if x.dim() == 4 else x.float()


@float32_loss
def mgca_loss(attention: Tensor, guidance: Tensor, valid: Tensor) -> Tensor:
    """Eq. 9 for the post-softmax text-to-image attention (B, Lt, N) (or (B, H, Lt, N), averaged)."""
    A = _head_mean(attention).clamp(ATTN_EPS, 1.0)  # (B, Lt, N)
    return masked_mean(-guidance.float() * A.log(), valid.bool())


@float32_loss
def mgca_official_loss(scores: Tensor, guidance: Tensor, valid: Tensor) -> Tensor:
    """`mgca.form=official`: BCE-with-logits of pre-softmax scores (B, Lt, N) (head-averaged) against G.

    ASAP's get_pre_Att_loss on the last fusion layer's cross-attention scores (models/ASAP.py l. 339-346); G and
    valid from `official_guidance` (per sample, no [CLS] shift, no padding tokens unless its defects are on);
    mean over the valid elements.
    """
    bce = F.binary_cross_entropy_with_logits(
        _head_mean(scores), guidance.float(), reduction="none"
    )  # (B, Lt, N)
    return masked_mean(bce, valid.bool())
