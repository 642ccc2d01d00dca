"""Full objective (ASAP eq. 13): L = L_DGM + L_LMA + alpha * L_MGCA + lambda * L_PMM.

L_DGM is HAMMER's weighted sum of its task terms (configs/train.yaml: loss_BIC_wgt 1, loss_MLC_wgt 1,
loss_bbox_wgt 0.1, loss_giou_wgt 0.1, loss_TMG_wgt 1, loss_MAC_wgt 0.1 for its image-text contrastive term).
L_LMA = L_VLC + L_IED (eq. 6), weighted by `lma` (1 in the paper). alpha = 0.1, lambda = 0.01 (§4.1).
Terms missing from the dict (switched-off parts) are skipped; unknown names raise.

Official mode (conf/mode/official.yaml) names the official code's terms: `mac` is HAMMER's loss_MAC under
loss_MAC_wgt (`itc`, 0.1); `aux_vlc` is ASAP's caption/explanation part (loss_eT) under `lma`, which that mode
sets to 0.1, as IED's: ASAP's train.py adds 0.1 * loss_vlc (= loss_MAC + loss_eT) and 0.1 * (MGCA + IED + 0.1 PMM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# canonical term names (keys of ASAPOutput.losses)
BIC, MLC, BBOX, GIOU, TMG, ITC = "bic", "mlc", "bbox", "giou", "tmg", "itc"  # HAMMER's DGM4 terms
VLC, IED, MGCA, PMM = "vlc", "ied", "mgca", "pmm"  # ASAP's terms
MAC, AUX_VLC = "mac", "aux_vlc"  # official mode: HAMMER's loss_MAC, ASAP's loss_eT (the auxiliary-text terms)
TERM_NAMES = (BIC, MLC, BBOX, GIOU, TMG, ITC, VLC, IED, MGCA, PMM, MAC, AUX_VLC)


@dataclass
class LossWeights:
    """Weights of eq. 13. Task terms: HAMMER's defaults; lma weights L_VLC + L_IED (eq. 6)."""

    bic: float = 1.0
    mlc: float = 1.0
    bbox: float = 0.1
    giou: float = 0.1
    tmg: float = 1.0
    itc: float = 0.1  # HAMMER's loss_MAC_wgt (terms itc, mac)
    lma: float = 1.0  # eq. 6 (terms vlc, ied, aux_vlc)
    alpha: float = 0.1  # MGCA
    lambda_: float = 0.01  # PMM

    def of(self, name: str) -> float:
        """The weight that multiplies term `name` in eq. 13."""
        by_name = {
            BIC: self.bic,
            MLC: self.mlc,
            BBOX: self.bbox,
            GIOU: self.giou,
            TMG: self.tmg,
            ITC: self.itc,
            MAC: self.itc,
            VLC: self.lma,
            AUX_VLC: self.lma,
            IED: self.lma,
            MGCA: self.alpha,
            PMM: self.lambda_,
        }
        if name not in by_name:
            raise KeyError(f"unknown loss term {name!r}; known: {', '.join(TERM_NAMES)}")
        return by_name[name]


def weighted_terms(terms: dict[str, Tensor], weights: LossWeights) -> dict[str, Tensor]:
    """Each present term times its eq. 13 weight (float32), e.g. for logging."""
    return {name: weights.of(name) * value.float() for name, value in terms.items()}


def total_loss(terms: dict[str, Tensor], weights: LossWeights) -> Tensor:
    """Eq. 13 over the terms present in `terms` (names from TERM_NAMES)."""
    if not terms:
        raise ValueError("total_loss: no loss terms")
    return torch.stack(list(weighted_terms(terms, weights).values())).sum()
