"""ASAP's training objective (eq. 13): every term switched on, by name, in the loss config's forms.

VLC (eq. 1-3; official: `mac` + `aux_vlc`), IED (eq. 4-5), MGCA (eq. 7-9; official: BCE on pre-softmax scores),
PMM (eq. 10-12), the DGM4 task terms (supp. §6) and, with `model.momentum.enabled`, ALBEF's momentum features,
queues and soft targets. Functions of the model and its forward's passes, not a module: the parameters they read
(heads, projections, momentum copies) stay where they are in `ASAPModel`, so the state-dict keys do not move.
Each term's maths is in `asap.losses` (one file per equation); this module picks the rows and forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.profiler import record_function

from asap import losses
from asap.models.attention import AttentionMap, tokens_to_patches
from asap.models.config import DefectsConfig
from asap.models.text_encoder import AUX_TEXTS, EncodedText, encode_texts

if TYPE_CHECKING:  # annotations only: asap.models.asap calls this module
    from asap.models.asap import ASAPModel, ASAPOutput, Fused

Momentum = dict[str, Any]  # `momentum_outputs`


def training_losses(
    model: ASAPModel,
    batch: Mapping[str, Any],
    image_embeds: Tensor,
    texts: dict[str, EncodedText],
    fused: Fused,
    explained: Fused | None,
    out: ASAPOutput,
    weight: float,
) -> dict[str, Tensor]:
    """Every term of eq. 13 that is switched on, by name (asap.losses.TERM_NAMES).

    image_embeds (B, 1+N, D): E_v(I); texts: E_t's outputs; `fused`: the image-text pass (maps of the MGCA layers);
    `explained`: the image-explanation pass (IED); out: the heads' outputs; weight: the distillation weight.
    """
    a, cfg = model.ablation, model.loss_cfg
    is_real = batch["binary_label"] == 0  # (B,) I(I, T) of eq. 2 and 5
    momentum = None
    if model.momentum is not None:
        with record_function("asap.momentum"):
            momentum = momentum_outputs(model, batch, weight)
    with record_function("asap.loss.contrastive"):
        terms = contrastive(model, image_embeds[:, 0], texts, is_real, momentum)
    if explained is not None:  # eq. 4-5; ASAP's code: itm_head_m on t_cls + UtilsB F_v, 2-way
        with record_function(f"asap.loss.{losses.IED}"):
            ied_in = model.delta * explained.pooled_vision + explained.text[:, 0]  # (B, D)
            logits = model.ied_head(ied_in)  # (B, 1) or (B, 2)
            if cfg.ied_form == "official":
                terms[losses.IED] = losses.ied_official_loss(logits, batch["binary_label"])
            else:
                terms[losses.IED] = losses.ied_loss(logits.squeeze(-1), is_real)
    if a.mgca:
        with record_function(f"asap.loss.{losses.MGCA}"):
            terms[losses.MGCA] = mgca_term(
                fused.maps, batch["token_labels"], batch["patch_labels"], cfg.mgca.form, cfg.defects
            )
    if a.pmm:  # eq. 12 on i_pat^v of the text rows
        with record_function(f"asap.loss.{losses.PMM}"):
            targets = losses.pmm_targets(batch["patch_labels"], batch["has_box"], hnp=a.hnp)
            patch_logits = model.patch_head(fused.patches).squeeze(-1)  # (B, N)
            if cfg.pmm_form == "official":
                terms[losses.PMM] = losses.pmm_official_loss(
                    patch_logits, targets, cfg.defects.pmm_ignored_log2
                )
            else:
                terms[losses.PMM] = losses.pmm_loss(patch_logits, targets)
    terms.update(dgm_losses(out, batch, model.loss_cfg.box_samples, momentum, weight))
    return terms


def dgm_losses(
    out: ASAPOutput, batch: Mapping[str, Any], box_samples: str, momentum: Momentum | None, weight: float
) -> dict[str, Tensor]:
    """Supp. §6: binary, multi-label, box (L1 + GIoU) and token losses (distilled with `weight`).

    HAMMER regresses every sample, no-box ones to the zero box (the IoU protocol scores ~0 boxes as hits);
    box_samples "boxed" regresses only the pairs with an edited face.
    """
    soft = None if momentum is None else momentum["token_probs"]
    terms = {}
    with record_function(f"asap.loss.{losses.BIC}"):
        terms[losses.BIC] = losses.binary_loss(out.binary_logits, batch["binary_label"])
    with record_function(f"asap.loss.{losses.MLC}"):
        terms[losses.MLC] = losses.multilabel_loss(out.multilabel_logits, batch["multilabel"])
    with record_function(f"asap.loss.{losses.BBOX}+{losses.GIOU}"):
        boxed = batch["has_box"] if box_samples == "boxed" else None  # (B,) or every sample
        terms[losses.BBOX], terms[losses.GIOU] = losses.box_loss(out.box_pred, batch["box"], boxed)
    with record_function(f"asap.loss.{losses.TMG}"):
        terms[losses.TMG] = losses.token_loss(
            out.token_logits, batch["token_labels"], soft, distill_weight=weight
        )
    return terms


def mgca_term(
    maps: list[AttentionMap],
    token_labels: Tensor,
    patch_labels: Tensor,
    form: str = "paper",
    defects: DefectsConfig | None = None,
) -> Tensor:
    """Eq. 9 (form "paper", post-softmax A) or the official BCE on pre-softmax scores, averaged over layers.

    maps: per MGCA layer, (B, >=L, 1+N); token_labels (B, L-1); patch_labels (B, N). defects: the official MGCA
    defects to reproduce (form "official" only).
    """
    text_len = token_labels.shape[1] + 1
    if form == "paper":
        guidance, valid = losses.guidance_mask(token_labels, patch_labels)  # eq. 8: (B, L-1, N) each
        terms = [losses.mgca_loss(tokens_to_patches(m.probs, text_len), guidance, valid) for m in maps]
        return torch.stack(terms).mean()
    d = defects or DefectsConfig()
    guidance, valid = losses.official_guidance(  # (B, R, N) each, R = L-1 (L with [CLS])
        token_labels, patch_labels, d.mgca_batch_tokens, d.mgca_cls_shift, d.mgca_padding
    )
    first = 0 if d.mgca_cls_shift else 1  # the [CLS] row enters with the shift
    terms = [losses.mgca_official_loss(m.scores[:, first:text_len, 1:], guidance, valid) for m in maps]
    return torch.stack(terms).mean()


def contrastive(
    model: ASAPModel,
    image_cls: Tensor,
    texts: dict[str, EncodedText],
    is_real: Tensor,
    momentum: Momentum | None,
) -> dict[str, Tensor]:
    """The contrastive terms in `loss.contrastive_form`, over the text and each auxiliary text switched on.

    Paper: eq. 3 over i2t/t2i (real pairs, HAMMER), i2c/c2i (all pairs, eq. 1), i2e/e2i (real pairs, eq. 2); with an
    auxiliary text on {"vlc": eq. 3} (part of L_LMA, eq. 6), without (baseline) HAMMER's image-text term
    {"itc": (i2t + t2i) / 2} under its own weight. Official (asap.losses.official_contrastive): {"mac": HAMMER's
    loss_MAC} and, with an auxiliary text on, {"aux_vlc": ASAP's loss_eT} (models/ASAP.py l. 206-303), each term a
    mean over the batch; the i2p soft target from the p2i similarities with `loss.defects.i2p_target_typo`.
    The diagonal target's anchors: real pairs for text and explanation (eq. 2), every pair for captions (eq. 1).
    """
    tau = model.alignment.temperature
    image_feat = model.alignment.image(image_cls)  # (B, E)
    anchors = {"text": is_real, "caption": None, "explanation": is_real}
    kinds = ["text"] + [k for k in AUX_TEXTS if getattr(model.ablation, k) and k in texts]
    official = model.loss_cfg.contrastive_form == "official"
    text_feats = {kind: model.alignment.text(texts[kind].embeds[:, 0]) for kind in kinds}  # (B, E) each
    terms: dict[str, list[Tensor]] = {}
    for kind, text_feat in text_feats.items():
        extra = {} if momentum is None else dict(momentum["contrastive"][kind])
        if not official:
            terms[kind] = list(losses.contrastive_terms(image_feat, text_feat, tau, anchors[kind], **extra))
            continue
        if kind == "explanation" and model.loss_cfg.defects.i2p_target_typo and "soft_targets" in extra:
            extra["soft_targets"] = (extra["soft_targets"][1], extra["soft_targets"][1])  # l. 262
        i2x, x2i = losses.contrastive_terms(
            image_feat, text_feat, tau, anchors[kind], reduction="batch", **extra
        )
        x2x = losses.self_contrastive(
            text_feat, tau, extra.get("text_keys")
        )  # (B+K, E) keys: the queue appended
        terms[kind] = [i2x, x2i, x2x]
    if not official:
        if len(terms) == 1:
            return {losses.ITC: losses.vlc_loss(*terms["text"])}
        pairs = [*terms["text"], *terms.get("caption", (None, None)), *terms.get("explanation", (None, None))]
        return {losses.VLC: losses.vlc_loss(*pairs)}
    image_keys = None if momentum is None else momentum["image_keys"]  # (B+K, E); None: the online features
    i2i = losses.self_contrastive(image_feat, tau, image_keys)  # against the momentum images + image queue
    i2t, t2i, t2t = terms.pop("text")
    out = {losses.MAC: losses.mac_loss(i2t, t2i, i2i, t2t)}
    if terms:
        out[losses.AUX_VLC] = losses.aux_vlc_loss([term for kind in terms for term in terms[kind]])
    return out


@torch.no_grad()
def momentum_outputs(model: ASAPModel, batch: Mapping[str, Any], weight: float) -> Momentum:
    """Momentum features, queues and soft targets (ALBEF), token probabilities (HAMMER); then enqueue.

    {"contrastive": per kind, the `contrastive_terms` keywords (keys (B+K, E) with the queue as it was before
    this step's enqueue); "image_keys": the image's (B+K, E); "token_probs": (B, L-1, 2)}.
    """
    m = model.momentum
    assert m is not None
    m.update(model.momentum_pairs())
    B, L = batch["input_ids"].shape
    image_embeds = m["image_encoder"](batch["image"])  # (B, 1+N, D)
    aux = [k for k in AUX_TEXTS if getattr(model.ablation, k)]  # the contrastive terms' texts
    texts = encode_texts(
        m["text_encoder"], batch, aux, cls_only=aux, packed=not model.pad_rows
    )  # [CLS] read only
    fused_text, _ = m["text_biased_encoder"](texts["text"].embeds, texts["text"].packing, image_embeds)
    token_probs = m["token_head"](fused_text[:, 1:L]).softmax(dim=-1)  # (B, L-1, 2)
    feats = {"image": m["alignment"].image(image_embeds[:, 0])}  # (B, E) each
    feats |= {kind: m["alignment"].text(texts[kind].embeds[:, 0]) for kind in ["text", *aux]}
    # HAMMER's *_feat_all, once per kind and step: new tensors, so the enqueue below leaves what the losses read
    keys = {
        kind: losses.keys_with_queue(feat, m.queue(kind)) for kind, feat in feats.items()
    }  # (B+K, E) each
    contrastive_keywords = {}
    for kind in ["text", *aux]:
        contrastive_keywords[kind] = dict(
            image_keys=keys["image"],
            text_keys=keys[kind],
            soft_targets=losses.momentum_targets(
                feats["image"],
                feats[kind],
                model.alignment.temperature,
                image_keys=keys["image"],
                text_keys=keys[kind],
            ),
            distill_alpha=weight,
        )
    m.enqueue(feats)
    return {"contrastive": contrastive_keywords, "image_keys": keys["image"], "token_probs": token_probs}
