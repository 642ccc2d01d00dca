"""Contrastive space of LMA (ASAP eq. 1-3): s(x, y)/tau between [CLS] features.

i_cls and t_cls / c_cls / e_cls are projected to a shared space and L2-normalised, so that x @ y.T is the
cosine similarity s(., .); tau is learnable (HAMMER/ALBEF `temp`, init 0.07, clamped in the loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ContrastiveProjection(nn.Module):
    def __init__(self, vision_width: int, text_width: int, embed_dim: int, temperature: float) -> None:
        super().__init__()
        self.vision_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.temperature = nn.Parameter(torch.tensor(float(temperature)))

    def image(self, image_cls: Tensor) -> Tensor:
        """i_cls (B, Dv) -> (B, E) unit vectors."""
        return F.normalize(self.vision_proj(image_cls), dim=-1)

    def text(self, text_cls: Tensor) -> Tensor:
        """t_cls / c_cls / e_cls (B, Dt) -> (B, E) unit vectors."""
        return F.normalize(self.text_proj(text_cls), dim=-1)
