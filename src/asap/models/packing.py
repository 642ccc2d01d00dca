"""Padding-free token rows (a training and inference fast path of E_t and E_mm^t).

A padded text batch (B, L) whose mask marks T real tokens is packed to those T rows: the linear layers, LayerNorms
and feed-forward blocks, which act on each row alone, then run on (T, D) instead of (B * L, D); only the
attention products need the padded (B, H, L, d) layout, and get it back from `pad`. Every real token gets the
same value as in the padded computation (padding is masked as a key either way); padding rows come back as
zeros. Texts of a batch vary in length (DGM4 headlines and auxiliary texts: 60-70 % of the padded positions are
real on the synthetic set), so this removes about a third of the text side's work. Several texts (text, caption,
explanation) can share one pass: their rows are concatenated for the row-wise work, and each text's attention
runs at its own padded length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, slots=True)
class Packing:
    """Which rows of a padded (B, L) text batch are computed, and which tokens are keys."""

    rows: Tensor  # (T,) positions of the computed rows in the flattened (B * L) batch, in order
    cls_rows: Tensor  # (B,) positions of each sequence's first token ([CLS]) among the T rows
    key_mask: Tensor  # (B, L) 1 = real token

    @classmethod
    def of(cls, mask: Tensor, packed: bool = True) -> Packing:
        """From the attention mask (B, L), 1 = real token; every sequence starts with a real [CLS] token.

        packed=False keeps every position as a row (padding rows computed too; they stay masked as keys).
        """
        if not bool(mask[:, 0].all()):
            raise ValueError("every sequence must start with a real token ([CLS]); the mask has one without")
        B, L = mask.shape
        computed = (mask != 0) if packed else torch.ones_like(mask, dtype=torch.bool)  # (B, L)
        counts = computed.sum(dim=1)  # (B,)
        cls_rows = counts.cumsum(0) - counts  # (B,) first row of each sequence
        return cls(computed.reshape(-1).nonzero().squeeze(1), cls_rows, mask)

    @property
    def batch(self) -> int:
        return self.key_mask.shape[0]

    @property
    def length(self) -> int:
        return self.key_mask.shape[1]

    @property
    def count(self) -> int:
        """T, the number of rows."""
        return self.rows.shape[0]

    def pack(self, x: Tensor) -> Tensor:
        """(B, L, ...) -> the rows (T, ...)."""
        return x.flatten(0, 1).index_select(0, self.rows)

    def pad(self, x: Tensor) -> Tensor:
        """The rows (T, ...) -> (B, L, ...), zeros elsewhere."""
        out = x.new_zeros(self.batch * self.length, *x.shape[1:])
        return out.index_copy(0, self.rows, x).view(self.batch, self.length, *x.shape[1:])
