"""Vision-language contrastive terms of LMA (ASAP eq. 1-3), with HAMMER's real-pair masking.

Eq. 1: L_i2c = -log exp(s(i, c)/tau) / sum_{c' in B} exp(s(i, c')/tau)   (all image-caption pairs).
Eq. 2: L_i2e = -I(I, T) log exp(s(i, e)/tau) / sum_{e' in B} exp(s(i, e')/tau)  (only where image and text
       are both unmanipulated).
Eq. 3: L_VLC = (L_i2t + L_t2i)/2 + (L_i2c + L_c2i + L_i2e + L_e2i)/4.

Image-text (i2t/t2i) follows HAMMER (models/HAMMER.py, "fine-grained alignment: only orig should be
aligned"): the positive target sits on the diagonal only for real (orig) pairs, fake pairs get an all-zero
target row but stay in the batch as negatives for the other rows. Pass `anchor_mask=is_orig` for i2t/t2i and
i2e/e2i, `anchor_mask=None` for i2c/c2i. HAMMER divides by the batch size (`reduction="batch"`); the
default here divides by the number of anchors (`reduction="anchors"`), i.e. the mean of eq. 2 over the pairs
it applies to.

Momentum variant (ALBEF/HAMMER): the keys are the momentum features (`image_keys`/`text_keys`) followed by a
queue (`image_queue`/`text_queue`, (K, D)); the distillation target is
(1 - alpha) * hard + alpha * softmax(momentum similarities) (`momentum_targets`). Each direction uses its own
momentum similarities (the official ASAP code takes the i2e target from the e2i similarities: not repeated, except in
official mode with `loss.defects.i2p_target_typo`, asap.losses.official_contrastive).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from asap.losses._common import float32_loss, masked_mean

TAU_MIN, TAU_MAX = 0.001, 0.5  # HAMMER clamps its learnable temperature to this range

Reduction = Literal["anchors", "batch"]


def _clamped(temperature: Tensor | float) -> Tensor:
    """tau clamped to [TAU_MIN, TAU_MAX] in value; the gradient passes straight through (also at the bounds).

    HAMMER clamps its parameter in place every step (`temp.clamp_` under no_grad); a plain clamp here would
    give a zero gradient at the bound, so a parameter clamped in place to exactly 0.5 could never move back.
    """
    tau = torch.as_tensor(temperature).float()
    return tau + (tau.clamp(TAU_MIN, TAU_MAX) - tau).detach()


def keys_with_queue(keys: Tensor, queue: Tensor) -> Tensor:
    """HAMMER's `*_feat_all`: keys (B, D) followed by the queue (K, D), float32, (B+K, D).

    A new tensor: build it once per step before the queue's enqueue and pass it to every term as their keys
    (`image_keys` / `text_keys` with no queue), so the enqueue cannot change what backward reads.
    """
    return torch.cat([keys.float(), queue.float()], dim=0)


def _keys(feat: Tensor, keys: Tensor | None, queue: Tensor | None) -> Tensor:
    """In-batch keys (online features unless momentum ones are given) followed by the queue: (B+K, D)."""
    keys = feat if keys is None else keys
    return keys.float() if queue is None else keys_with_queue(keys, queue)


def _direction(
    sim: Tensor, anchors: Tensor, soft: Tensor | None, alpha: float, reduction: Reduction
) -> Tensor:
    """Soft cross-entropy of one direction. sim (B, B+K) logits, anchors (B,) bool, soft (B, B+K) or None."""
    B = sim.shape[0]
    hard = torch.eye(B, sim.shape[1], device=sim.device)  # (B, B+K) positives on the diagonal
    if reduction == "batch":  # HAMMER: non-anchor rows keep only the distillation part; mean over B
        hard = hard * anchors[:, None]
    target = hard if soft is None else (1.0 - alpha) * hard + alpha * soft.float()
    per_row = -(target * F.log_softmax(sim, dim=1)).sum(dim=1)  # (B,)
    if reduction == "batch":
        return per_row.mean()
    return masked_mean(per_row, anchors)


@float32_loss
def contrastive_terms(
    image_feat: Tensor,
    text_feat: Tensor,
    temperature: Tensor | float,
    anchor_mask: Tensor | None = None,
    *,
    image_keys: Tensor | None = None,
    text_keys: Tensor | None = None,
    image_queue: Tensor | None = None,
    text_queue: Tensor | None = None,
    soft_targets: tuple[Tensor, Tensor] | None = None,
    distill_alpha: float = 0.4,
    reduction: Reduction = "anchors",
) -> tuple[Tensor, Tensor]:
    """(x2y, y2x) InfoNCE terms of eq. 1-2 for L2-normalised image_feat, text_feat (B, D).

    temperature: learnable scalar tau, clamped to [0.001, 0.5] (straight-through gradient).
    anchor_mask (B,) bool: rows (and diagonal positives) that count, eq. 2's indicator; None = all.
    image_keys/text_keys (B, D): in-batch keys (momentum features; default the online ones), or (B+K, D) with the
    queue already appended (`keys_with_queue`: built once per step for all terms).
    image_queue/text_queue (K, D): extra negatives appended after the keys.
    soft_targets: (x2y, y2x) probabilities (B, B+K) from `momentum_targets`, mixed with weight distill_alpha.
    reduction: "anchors" = mean over anchors (0 if none), "batch" = sum over anchors / B (HAMMER).
    """
    if reduction not in ("anchors", "batch"):
        raise ValueError(f"reduction must be 'anchors' or 'batch', got {reduction!r}")
    tau = _clamped(temperature)
    img, txt = image_feat.float(), text_feat.float()  # (B, D)
    B = img.shape[0]
    anchors = (
        torch.ones(B, dtype=torch.bool, device=img.device) if anchor_mask is None else anchor_mask.bool()
    )
    sim_i2t = img @ _keys(txt, text_keys, text_queue).T / tau  # (B, B+K)
    sim_t2i = txt @ _keys(img, image_keys, image_queue).T / tau  # (B, B+K)
    soft_i2t, soft_t2i = (None, None) if soft_targets is None else soft_targets
    return (
        _direction(sim_i2t, anchors, soft_i2t, distill_alpha, reduction),
        _direction(sim_t2i, anchors, soft_t2i, distill_alpha, reduction),
    )


@torch.no_grad()
@float32_loss
def momentum_targets(
    image_feat_m: Tensor,
    text_feat_m: Tensor,
    temperature: Tensor | float,
    image_queue: Tensor | None = None,
    text_queue: Tensor | None = None,
    *,
    image_keys: Tensor | None = None,
    text_keys: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Softmax similarities (i2t, t2i), each (B, B+K), of the momentum features against keys + queue.

    The keys are the momentum features themselves unless `image_keys` / `text_keys` are given (as in
    `contrastive_terms`: (B+K, D) with the queue already appended, or (B, D) followed by the queue).
    """
    tau = torch.as_tensor(temperature).float().clamp(TAU_MIN, TAU_MAX)
    img, txt = image_feat_m.float(), text_feat_m.float()  # (B, D)
    sim_i2t = img @ _keys(txt, text_keys, text_queue).T / tau  # (B, B+K)
    sim_t2i = txt @ _keys(img, image_keys, image_queue).T / tau  # (B, B+K)
    return sim_i2t.softmax(dim=1), sim_t2i.softmax(dim=1)


def _pair(name: str, a: Tensor | None, b: Tensor | None) -> list[Tensor]:
    if (a is None) != (b is None):
        raise ValueError(f"{name}: give both directions or neither")
    return [] if a is None else [a.float(), b.float()]  # type: ignore[union-attr]


def vlc_loss(
    i2t: Tensor,
    t2i: Tensor,
    i2c: Tensor | None = None,
    c2i: Tensor | None = None,
    i2e: Tensor | None = None,
    e2i: Tensor | None = None,
) -> Tensor:
    """Eq. 3: (i2t + t2i)/2 + mean of the auxiliary terms present.

    Both aux pairs: (i2c + c2i + i2e + e2i)/4 (eq. 3). Caption only: (i2c + c2i)/2; explanation only:
    (i2e + e2i)/2; neither: (i2t + t2i)/2. The auxiliary block keeps weight 1 whatever is switched off.
    """
    aux = _pair("caption", i2c, c2i) + _pair("explanation", i2e, e2i)
    loss = (i2t.float() + t2i.float()) / 2
    return loss + torch.stack(aux).mean() if aux else loss
