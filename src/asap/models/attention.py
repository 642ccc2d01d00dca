"""Multi-head attention with an optional explicit attention map (ASAP eq. 7), and the map's MGCA layout.

Fused `scaled_dot_product_attention` by default; when the map is asked for (MGCA, visualisation) the scores and
the softmax are computed explicitly, A = softmax(W_q x (W_k y)^T / sqrt(h)), and returned averaged over heads.
Which path runs otherwise is chosen once, globally, as timm's `use_fused_attn`: the environment variable
`ASAP_FUSED_ATTN` (0 = explicit everywhere; default 1) or `set_fused_attn` before a model is built, read by each
attention module (ours, the timm ViT's, BERT's implementation) at construction.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asap.models.packing import Packing

_USE_FUSED_ATTN = os.environ.get("ASAP_FUSED_ATTN", "1") != "0"


def use_fused_attn() -> bool:
    """Whether attention modules built from now on use fused SDPA where no map is asked for (default True)."""
    return _USE_FUSED_ATTN


def set_fused_attn(enable: bool = True) -> None:
    """Fused (True) or explicit (False) attention for the models built after this call (benchmarks, debugging)."""
    global _USE_FUSED_ATTN
    _USE_FUSED_ATTN = enable


@dataclass
class AttentionMap:
    """Head-averaged attention of one layer: `probs` post-softmax (eq. 7), `scores` pre-softmax. (B, Lq, Lk)."""

    probs: Tensor
    scores: Tensor


def tokens_to_patches(attention: Tensor, text_len: int) -> Tensor:
    """(B, L', 1+N) map over the fused rows -> (B, text_len-1, N): drop [CLS] row, image [CLS] column, padding."""
    return attention[:, 1:text_len, 1:]


def mean_text_to_image_attention(probs: list[Tensor], text_len: int) -> Tensor:
    """Eq. 7 averaged over the MGCA layers: post-softmax maps (B, L', 1+N) -> (B, L-1, N), the layout of
    `token_labels` x `patch_labels` (word tokens without [CLS], image patches without the image [CLS])."""
    return torch.stack([tokens_to_patches(p, text_len) for p in probs]).mean(dim=0)


def padding_bias(key_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """(B, Lk) 1 = real key -> additive bias (B, 1, 1, Lk): 0 for real keys, the dtype's minimum for padding."""
    if key_mask is None:
        return None
    bias = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    return bias.masked_fill(key_mask == 0, torch.finfo(dtype).min)[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """Queries from `x`, keys and values from `context` (self-attention when `context` is `x`)."""

    def __init__(
        self, dim: int, num_heads: int, context_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        context_dim = context_dim or dim
        self.num_heads, self.head_dim, self.dropout = num_heads, dim // num_heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(context_dim, dim)
        self.value = nn.Linear(context_dim, dim)
        self.output = nn.Linear(dim, dim)
        self.fused_attn = use_fused_attn()  # False: every attention explicit (timm's `fused_attn`)

    def _heads(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, d)

    def keys_values(self, context: Tensor, packing: Packing | None = None) -> tuple[Tensor, Tensor]:
        """Keys and values of `context` (B, Lk, Dc), or of its real rows (T, Dc) with `packing`, each (B, H, Lk, d).

        Computed once when shared by passes; packed rows are projected alone and padded with zeros (masked keys).
        """
        key, value = self.key(context), self.value(context)
        if packing is not None:
            key, value = packing.pad(key), packing.pad(value)  # (B, Lk, D)
        return self._heads(key), self._heads(value)

    def queries(self, x: Tensor) -> Tensor:
        """Queries of `x` (B, Lq, D), (B, H, Lq, d): computed once when shared by passes."""
        return self._heads(self.query(x))

    def forward(
        self,
        x: Tensor | None,
        context: Tensor | None,
        key_mask: Tensor | None = None,
        return_map: bool = False,
        keys_values: tuple[Tensor, Tensor] | None = None,
        packing: Packing | None = None,
        queries: Tensor | None = None,
    ) -> tuple[Tensor, AttentionMap | None]:
        """x (B, Lq, D) or its `queries`, context (B, Lk, Dc) or its `keys_values`, key_mask (B, Lk) 1 = attend
        -> (B, Lq, D), map.

        packing: x is the real rows (T, D) of a padded (B, Lq) batch; the projections run on those rows alone and
        the output is (T, D) too (the map stays (B, Lq, Lk)).
        """
        if queries is not None:
            q = queries  # (B, H, Lq, d)
        else:
            q = self.query(x)  # (B, Lq, D) or (T, D)
            q = self._heads(q if packing is None else packing.pad(q))  # (B, H, Lq, d)
        k, v = keys_values if keys_values is not None else self.keys_values(context)  # (B, H, Lk, d) each
        bias = padding_bias(key_mask, q.dtype)  # (B, 1, 1, Lk) or None
        p = self.dropout if self.training else 0.0
        attention = None
        if return_map or not self.fused_attn:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, Lq, Lk)
            probs = (scores if bias is None else scores + bias).softmax(dim=-1)  # eq. 7
            out = F.dropout(probs, p, self.training) @ v  # (B, H, Lq, d)
            if return_map:  # (B, Lq, Lk)
                attention = AttentionMap(probs=probs.mean(dim=1), scores=scores.mean(dim=1))
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, H, Lq, d)
        out = out.transpose(1, 2).flatten(2)  # (B, Lq, D)
        return self.output(out if packing is None else packing.pack(out)), attention
