"""ASAP and DGM4 losses, one file per loss (each cites the equation it implements)."""

from asap.losses.contrastive import contrastive_terms, keys_with_queue, momentum_targets, vlc_loss
from asap.losses.dgm import binary_loss, box_loss, multilabel_loss, token_loss
from asap.losses.ied import ied_loss, ied_official_loss
from asap.losses.mgca import guidance_mask, mgca_loss, mgca_official_loss, official_guidance
from asap.losses.official_contrastive import aux_vlc_loss, mac_loss, self_contrastive
from asap.losses.pmm import pmm_loss, pmm_official_loss, pmm_targets
from asap.losses.total import (
    AUX_VLC,
    BBOX,
    BIC,
    GIOU,
    IED,
    ITC,
    MAC,
    MGCA,
    MLC,
    PMM,
    TERM_NAMES,
    TMG,
    VLC,
    LossWeights,
    total_loss,
    weighted_terms,
)

__all__ = [
    "AUX_VLC",
    "BBOX",
    "BIC",
    "GIOU",
    "IED",
    "ITC",
    "MAC",
    "MGCA",
    "MLC",
    "PMM",
    "TERM_NAMES",
    "TMG",
    "VLC",
    "LossWeights",
    "aux_vlc_loss",
    "mac_loss",
    "self_contrastive",
    "official_guidance",
    "pmm_official_loss",
    "ied_official_loss",
    "binary_loss",
    "box_loss",
    "contrastive_terms",
    "guidance_mask",
    "ied_loss",
    "keys_with_queue",
    "mgca_loss",
    "mgca_official_loss",
    "momentum_targets",
    "multilabel_loss",
    "pmm_loss",
    "pmm_targets",
    "token_loss",
    "total_loss",
    "vlc_loss",
    "weighted_terms",
]
