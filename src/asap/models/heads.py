"""Task heads (ASAP supp. §6, §4.1; HAMMER's build_mlp) and the PMM patch classifier (eq. 12).

Binary C_b, multi-label C_m (on M_it), box D_v (on F_v), token D_t (on t_tok^t) and the IED detector (eq. 4)
are 3-layer MLPs; the PMM classifier C is one linear layer.
"""

from __future__ import annotations

from torch import nn


def mlp_head(dim: int, out_dim: int) -> nn.Sequential:
    """HAMMER's build_mlp: Linear(D, 2D) LN GELU Linear(2D, 2D) LN GELU Linear(2D, out)."""
    return nn.Sequential(
        nn.Linear(dim, dim * 2),
        nn.LayerNorm(dim * 2),
        nn.GELU(),
        nn.Linear(dim * 2, dim * 2),
        nn.LayerNorm(dim * 2),
        nn.GELU(),
        nn.Linear(dim * 2, out_dim),
    )


def patch_classifier(dim: int) -> nn.Linear:
    """Eq. 12's binary classifier C on each vision-biased patch feature: (B, N, D) -> (B, N, 1) logits."""
    return nn.Linear(dim, 1)
