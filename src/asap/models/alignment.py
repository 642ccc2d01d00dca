"""Contrastive space of LMA (ASAP eq. 1-3): s(x, y)/tau between [CLS] features.

i_cls and t_cls / c_cls / e_cls are projected to a shared space and L2-normalised, so that x @ y.T is the
cosine similarity s(., .); tau is learnable (HAMMER/ALBEF `temp`, init 0.07, clamped in the loss).

`center=True` subtracts each batch's mean projection before normalising. Randomly initialised encoders give
nearly the same [CLS] feature for every input (mean pairwise cosine ~0.9999 for the tiny model at init), so
every similarity is ~1, eq. 1-2 sit at log(B) and their gradients vanish; the common part is what centring
removes. Pretrained encoders (the paper) do not need it. With momentum queues each batch's keys are centred by
their own batch's mean before they are queued. The space serves only the training losses, so inference is
unchanged either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asap.losses.contrastive import TAU_MAX, TAU_MIN


class ContrastiveProjection(nn.Module):
    def __init__(
        self, vision_width: int, text_width: int, embed_dim: int, temperature: float, center: bool = False
    ) -> None:
        super().__init__()
        self.vision_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.temperature = nn.Parameter(torch.tensor(float(temperature)))
        self.center = center

    @torch.no_grad()
    def clamp_temperature_(self) -> None:
        """tau clamped in place to [TAU_MIN, TAU_MAX] (HAMMER/ASAP: `temp.clamp_(0.001, 0.5)` first in each step)."""
        self.temperature.clamp_(TAU_MIN, TAU_MAX)

    def image(self, image_cls: Tensor) -> Tensor:
        """i_cls (B, Dv) -> (B, E) unit vectors."""
        return self._unit(self.vision_proj(image_cls))

    def text(self, text_cls: Tensor) -> Tensor:
        """t_cls / c_cls / e_cls (B, Dt) -> (B, E) unit vectors."""
        return self._unit(self.text_proj(text_cls))

    def _unit(self, feat: Tensor) -> Tensor:
        if self.center and feat.shape[0] > 1:  # a single sample has no batch mean to remove
            feat = feat - feat.mean(dim=0, keepdim=True)  # (B, E)
        return F.normalize(feat, dim=-1)
