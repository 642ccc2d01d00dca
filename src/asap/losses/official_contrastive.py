"""Official-mode contrastive terms: HAMMER's loss_MAC and ASAP's auxiliary-text terms (ASAP models/ASAP.py l. 206-303,
HAMMER models/HAMMER.py l. 156-209).

For the image and one kind of text x (t text, c caption, p explanation), online features i, x (B, E) and keys
I_all, X_all (B+K, E) = the momentum features followed by the queue (the online features without momentum),
tau clamped to [0.001, 0.5]:
  L_i2x = mean_b -sum_k [(1 - a) Y_x + a softmax(i_m X_all^T / tau)](b, k) log_softmax(i X_all^T / tau)(b, k)
  L_x2i = the same with x, I_all and softmax(x_m I_all^T / tau)
  L_x2x = mean_b -log_softmax(x X_all^T / tau)(b, b)     (and L_i2i from i, I_all)
Y_x is the diagonal on the real rows for text and explanation ("only orig should be aligned"), on every row for
captions; a manipulated row keeps only its a-part, and every mean runs over the whole batch (`contrastive_terms`
with reduction "batch"). loss_MAC = (i2t + t2i + i2i + t2t) / 4 and loss_eT = (i2c + c2i + c2c + i2p + p2i + p2p) / 6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asap.losses._common import float32_loss
from asap.losses.contrastive import _clamped, _keys


@float32_loss
def self_contrastive(
    feat: Tensor, temperature: Tensor | float, keys: Tensor | None = None, queue: Tensor | None = None
) -> Tensor:
    """In-modality term (HAMMER's i2i / t2t, ASAP's c2c / p2p) of feat (B, E) against keys (B, E) + queue (K, E)
    (or keys (B+K, E) with the queue already appended, `keys_with_queue`).

    Target: the diagonal on every row (sim_targets_g2g), no distillation; mean over the batch.
    """
    sim = feat.float() @ _keys(feat, keys, queue).T / _clamped(temperature)  # (B, B+K)
    return -F.log_softmax(sim, dim=1).diagonal().mean()


def mac_loss(i2t: Tensor, t2i: Tensor, i2i: Tensor, t2t: Tensor) -> Tensor:
    """HAMMER's loss_MAC: the mean of its four terms."""
    return (i2t + t2i + i2i + t2t) / 4


def aux_vlc_loss(terms: list[Tensor]) -> Tensor:
    """ASAP's loss_eT: the mean of the auxiliary-text terms present (six with captions and explanations)."""
    if not terms:
        raise ValueError("aux_vlc_loss: no auxiliary-text terms")
    return torch.stack([t.float() for t in terms]).mean()
