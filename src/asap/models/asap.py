"""ASAP (Zhang et al.): HAMMER's two multimodal encoders plus LMA, MGCA and PMM, which run only in training.

Inference: E_v(I), E_t(T) -> vision-biased E_mm^v (box, F_v) and text-biased E_mm^t (tokens, F_t) ->
binary / multi-label heads on M_it = delta F_v + F_t (supp. §6). Training adds, each when switched on:
VLC (eq. 1-3) over text, caption and explanation, IED (eq. 4-5), MGCA (eq. 7-9), PMM (eq. 10-12), the DGM4
task losses (supp. §6) and, as an option, ALBEF-style momentum encoders with queues and token distillation.
Official mode (conf/mode/official.yaml, docs/fidelity.md) swaps in, term by term, what ASAP's and HAMMER's training
code compute: `mac` + `aux_vlc` for VLC, the 2-way IED head, MGCA on pre-softmax scores, PMM over all cells, ASAP's
vision-biased block and its two scalars; `loss.defects.*` reproduce the code's defects one by one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.profiler import record_function

from asap.losses import (
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
    TMG,
    VLC,
    aux_vlc_loss,
    binary_loss,
    box_loss,
    contrastive_terms,
    ied_loss,
    ied_official_loss,
    keys_with_queue,
    mac_loss,
    momentum_targets,
    multilabel_loss,
    pmm_loss,
    pmm_official_loss,
    pmm_targets,
    self_contrastive,
    token_loss,
    vlc_loss,
)
from asap.models.alignment import ContrastiveProjection
from asap.models.attention import AttentionMap
from asap.models.config import AblationConfig, ConfigError, LossConfig, ModelConfig
from asap.models.heads import mlp_head, patch_classifier
from asap.models.image_encoder import build_image_encoder
from asap.models.mgca import mean_text_to_image_attention, mgca_term
from asap.models.momentum import MomentumModel
from asap.models.packing import Packing
from asap.models.text_biased_encoder import ImageKV, TextBiasedEncoder
from asap.models.text_encoder import TextEncoder, bert_config, build_text_encoder
from asap.models.vision_biased_encoder import VisionBiasedEncoder

AUX_TEXTS = ("caption", "explanation")


@dataclass
class ASAPOutput:
    binary_logits: Tensor  # (B, 2) real / fake
    multilabel_logits: Tensor  # (B, 4) FS, FA, TS, TA
    box_pred: Tensor  # (B, 4) sigmoid cx, cy, w, h
    token_logits: Tensor  # (B, L-1, 2) per word-piece, no [CLS]
    losses: dict[str, Tensor] = field(default_factory=dict)  # training only, one entry per term
    text_to_image_attention: Tensor | None = None  # (B, L-1, N) eq. 7, when computed


@dataclass
class EncodedText:
    embeds: Tensor  # (B, L, D) E_t output; (B, 1, D) for a text read at [CLS] only
    packing: Packing  # the rows E_t computed, reused by E_mm^t

    @property
    def mask(self) -> Tensor:
        """(B, L) 1 = token."""
        return self.packing.key_mask


@dataclass
class Fused:
    """Both multimodal encoders on one image-text batch."""

    patches: Tensor  # (B, N, D) i_pat^v
    pooled_vision: Tensor  # (B, D) F_v
    text: Tensor  # (B, L, D) {t_cls^t, t_tok^t}; (B, 1, D) t_cls^t alone from a cls_only pass
    maps: list[AttentionMap]  # text->image maps of the MGCA layers, (B, L, 1+N) each


@dataclass
class SharedImage:
    """The image's projections that the image-text and image-explanation passes share (same images, same layers)."""

    text_keys_values: list[ImageKV]  # E_mm^t's cross-attention keys and values per layer, (B, H, 1+N, d) each
    vision_queries: Tensor  # E_mm^v's cross-attention queries, (B, H, 1+N, d)


@dataclass(slots=True)  # a misspelt switch raises instead of being set on the side
class FastPaths:
    """The training fast paths, all on by default; benchmarks/bench.py switches each off to measure it.

    Every setting gives the same losses and gradients (tests/test_fast_paths.py, in eval mode: with dropout on, a
    path that computes fewer rows draws fewer random masks, so a training run follows another random path). They are
    not user options.
    """

    # how text, caption and explanation go through E_t: "joint" (one pass: row-wise work batched, attention per
    # text at its own length) or "each" (one pass per text); see `encode_texts`
    text_passes: str = "joint"
    # True -> the token head reads an extra E_t + E_mm^t pass from the input ids, as HAMMER's
    hammer_token_pass: bool = False
    # False -> the image-explanation pass of IED recomputes the image's projections (E_mm^t's keys and values,
    # E_mm^v's queries)
    share_image_projections: bool = True
    # False -> the last E_mm^t layer of IED's pass computes every explanation token, not t_cls^t alone
    ied_cls_only: bool = True
    # False -> E_t's last layer computes every caption token, not c_cls alone (eq. 1 reads only c_cls); in the
    # momentum pass, every auxiliary text's tokens (only their [CLS] rows feed the queues)
    caption_cls_only: bool = True
    # False -> the projections and feed-forward blocks of E_t and E_mm^t run on padding tokens too
    packed_rows: bool = True

    @property
    def cls_only_texts(self) -> tuple[str, ...]:
        """The kinds of text whose E_t output is their [CLS] row alone."""
        return ("caption",) if self.caption_cls_only else ()


def init_new_weights(module: nn.Module, std: float = 0.02) -> None:
    """HAMMER's init of its own (non-pretrained) parts: truncated normal linears (std 0.02), unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ASAPModel(nn.Module):
    """`forward(batch)` -> `ASAPOutput`; losses (and the parts that only serve them) only when training."""

    def __init__(
        self, model: ModelConfig, loss: LossConfig, ablation: AblationConfig, load_weights: bool = True
    ) -> None:
        super().__init__()
        self.cfg, self.loss_cfg, self.ablation = model, loss, ablation
        D = model.image_encoder.embed_dim
        self.image_encoder = build_image_encoder(
            model.image_encoder, model.image_size, model.patch_size, load_weights
        )
        self.text_encoder, upper_layers = build_text_encoder(model.text_encoder, load_weights)
        self.text_biased_encoder = TextBiasedEncoder(bert_config(model.text_encoder), len(upper_layers), D)
        self.vision_biased_encoder = VisionBiasedEncoder(D, model.image_encoder.num_heads, model.vision_block)
        self.alignment = ContrastiveProjection(
            D, model.text_width, model.embed_dim, model.temperature, center=model.center_contrastive
        )
        self.binary_head = mlp_head(D, 2)
        self.multilabel_head = mlp_head(D, 4)
        self.box_head = mlp_head(D, 4)
        self.token_dropout = nn.Dropout(model.dropout)
        self.token_head = mlp_head(D, 2)
        uses_delta = ablation.modality == "both" or ablation.ied
        self.delta = nn.Parameter(torch.tensor(float(model.delta_init))) if uses_delta else None
        # ASAP's UtilsC: the multi-label head's own scalar (self.delta is then UtilsB: binary head and IED)
        uses_multilabel_delta = model.multilabel_delta and ablation.modality == "both"
        self.multilabel_delta = nn.Parameter(torch.tensor(float(model.delta_init))) if uses_multilabel_delta else None
        # eq. 4: one logit (paper) | ASAP's itm_head_m: two (official)
        self.ied_head = mlp_head(D, 2 if loss.ied_form == "official" else 1) if ablation.ied else None
        self.patch_head = patch_classifier(D) if ablation.pmm else None
        for part in self._new_parts():
            part.apply(partial(init_new_weights, std=model.new_parts_std))
        if model.text_encoder.pretrained and load_weights:
            self.text_biased_encoder.load_bert_layers(upper_layers)
        self.fast_paths = FastPaths()  # benchmark-only: each fast path can be switched off to measure it
        if loss.defects.mgca_padding:  # the padding rows' scores enter MGCA: E_t and E_mm^t compute those rows
            self.fast_paths.packed_rows = False
        self.momentum = None
        if model.momentum.enabled:
            aux_queues = [kind for kind in AUX_TEXTS if getattr(ablation, kind)]
            m = model.momentum
            self.momentum = MomentumModel(
                self.momentum_pairs(),
                ["image", "text", *aux_queues],
                model.embed_dim,
                m.queue_size,
                m.decay,
                unread=["alignment.temperature"],  # the targets divide by the online tau (ALBEF, HAMMER)
            )
            if loss.defects.aux_queues_from_text:  # ASAP models/ASAP.py l. 100-101
                with torch.no_grad():
                    for kind in aux_queues:
                        getattr(self.momentum, f"{kind}_queue").copy_(self.momentum.text_queue)

    def compile_encoders(self, **options: Any) -> None:
        """torch.compile E_v, E_t, E_mm^v and E_mm^t in place (`model.compile`); state-dict keys unchanged."""
        for encoder in (
            self.image_encoder,
            self.text_encoder,
            self.vision_biased_encoder,
            self.text_biased_encoder,
        ):
            encoder.compile(**options)

    def _new_parts(self) -> list[nn.Module]:
        parts = [self.text_biased_encoder, self.vision_biased_encoder, self.alignment, self.binary_head]
        parts += [self.multilabel_head, self.box_head, self.token_head, self.ied_head, self.patch_head]
        return [p for p in parts if p is not None]

    def momentum_pairs(self) -> dict[str, nn.Module]:
        """The online modules that have momentum copies (ALBEF: encoders and projections; HAMMER: token head)."""
        return {
            "image_encoder": self.image_encoder,
            "text_encoder": self.text_encoder,
            "text_biased_encoder": self.text_biased_encoder,
            "alignment": self.alignment,
            "token_head": self.token_head,
        }

    # ------------------------------------------------------------------ encoders
    def fuse(
        self,
        image_embeds: Tensor,
        text: EncodedText,
        map_layers: list[int],
        shared: SharedImage | None = None,
        cls_only: bool = False,
    ) -> Fused:
        """E_mm^v (image queries) and E_mm^t (text queries) on image (B, 1+N, D) and text (B, L, D).

        shared: the image's projections when shared with another pass on the same images.
        cls_only: E_mm^t's output is t_cls^t alone, (B, 1, D) (its last layer computes only that row).
        """
        vision = self.vision_biased_encoder(
            image_embeds, text.embeds, text.mask, None if shared is None else shared.vision_queries
        )
        fused_text, maps = self.text_biased_encoder(
            text.embeds,
            text.packing,
            image_embeds,
            map_layers,
            image_kv=None if shared is None else shared.text_keys_values,
            cls_only=cls_only,
        )
        return Fused(vision.patches, vision.pooled, fused_text, maps)

    def heads_input(self, pooled_vision: Tensor, text_cls: Tensor, delta: Tensor | None = None) -> Tensor:
        """M_it (supp. §6.2): delta F_v + F_t; F_t alone (modality text, HAMMER) or F_v alone (modality image).

        delta: the scalar (default `self.delta`; the multi-label head's own with `model.multilabel_delta`).
        """
        if self.ablation.modality == "text":
            return text_cls
        if self.ablation.modality == "image":
            return pooled_vision
        return (self.delta if delta is None else delta) * pooled_vision + text_cls

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        batch: Mapping[str, Any],
        *,
        compute_losses: bool | None = None,
        return_attention: bool = False,
        distill_weight: float | None = None,
    ) -> ASAPOutput:
        """Predictions for `batch` (docs/contracts.md); with losses when training (or `compute_losses`).

        return_attention: also return the text->image map (B, L-1, N) of the MGCA layers (visualisation).
        distill_weight: momentum distillation weight (default `model.momentum.distill_alpha`).
        """
        train = self.training if compute_losses is None else compute_losses
        a = self.ablation
        aux = [k for k in AUX_TEXTS if train and (getattr(a, k) or (k == "explanation" and a.ied))]
        map_layers = list(self.loss_cfg.mgca.layers) if (train and a.mgca) or return_attention else []
        if train and self.loss_cfg.contrastive_form == "official":
            self.alignment.clamp_temperature_()  # the official step stores the clamped tau (paper: clamped in use)

        with record_function("asap.image_encoder"):
            image_embeds = self.image_encoder(batch["image"])  # (B, 1+N, D)
        with record_function("asap.text_encoder"):
            texts = encode_texts(self.text_encoder, batch, aux, self.fast_paths)
        with record_function("asap.fuse_text"):
            shared = None
            if train and a.ied and self.fast_paths.share_image_projections:  # text and explanation: the same images
                shared = SharedImage(
                    self.text_biased_encoder.image_keys_values(image_embeds),
                    self.vision_biased_encoder.image_queries(image_embeds),
                )
            fused = self.fuse(image_embeds, texts["text"], map_layers, shared)  # maps: MGCA layers only
        token_text = self._hammer_token_pass(batch, image_embeds) if self.fast_paths.hammer_token_pass else None
        with record_function("asap.heads"):
            out = self.predict(fused, token_text)
        if train:
            explained = None
            if a.ied:  # eq. 4: image + explanation through both multimodal encoders, no maps, F_t only
                with record_function("asap.fuse_explanation"):
                    explained = self.fuse(image_embeds, texts["explanation"], [], shared, self.fast_paths.ied_cls_only)
            weight = self.cfg.momentum.distill_alpha if distill_weight is None else distill_weight
            out.losses = self.training_losses(batch, image_embeds, texts, fused, explained, out, weight)
        return out

    def _hammer_token_pass(self, batch: Mapping[str, Any], image_embeds: Tensor) -> Tensor:
        """HAMMER's token grounding input: E_t + E_mm^t run again from the ids (benchmark reference only)."""
        with record_function("asap.hammer_token_pass"):
            mask = batch["attention_mask"]
            text = self.text_encoder.bert_forward(batch["input_ids"], mask)  # (B, L, D)
            return self.text_biased_encoder(text, Packing.of(mask, packed=False), image_embeds)[0]  # (B, L, D)

    def predict(self, fused: Fused, token_text: Tensor | None = None) -> ASAPOutput:
        """The four DGM4 heads on the text rows; the token head on t_tok^t of `fused` (or on `token_text`)."""
        text_cls, vision = fused.text[:, 0], fused.pooled_vision  # F_t, F_v (B, D)
        joint = self.heads_input(vision, text_cls)  # M_it (B, D); ASAP's code: UtilsB
        joint_multilabel = joint  # ASAP's code: UtilsC, its own scalar
        if self.multilabel_delta is not None:
            joint_multilabel = self.heads_input(vision, text_cls, self.multilabel_delta)  # (B, D)
        tokens = (fused.text if token_text is None else token_text)[:, 1:]  # t_tok^t (B, L-1, D)
        out = ASAPOutput(
            binary_logits=self.binary_head(joint),
            multilabel_logits=self.multilabel_head(joint_multilabel),
            box_pred=self.box_head(vision).sigmoid(),
            token_logits=self.token_head(self.token_dropout(tokens)),  # (B, L-1, 2)
        )
        if fused.maps:
            L = fused.text.shape[1]
            out.text_to_image_attention = mean_text_to_image_attention([m.probs for m in fused.maps], L)
        return out

    def training_losses(
        self,
        batch: Mapping[str, Any],
        image_embeds: Tensor,
        texts: dict[str, EncodedText],
        fused: Fused,
        explained: Fused | None,
        out: ASAPOutput,
        weight: float,
    ) -> dict[str, Tensor]:
        """Every term of eq. 13 that is switched on, by name (asap.losses.TERM_NAMES), in the loss config's forms.

        `fused`: the image-text pass (maps of the MGCA layers); `explained`: the image-explanation pass (IED).
        """
        a, cfg = self.ablation, self.loss_cfg
        is_real = batch["binary_label"] == 0  # (B,) I(I, T) of eq. 2 and 5
        momentum = None
        if self.momentum is not None:
            with record_function("asap.momentum"):
                momentum = self._momentum_outputs(batch, weight)
        with record_function("asap.loss.contrastive"):
            if cfg.contrastive_form == "official":
                losses = self._official_contrastive(image_embeds[:, 0], texts, is_real, momentum)
            else:
                losses = self._contrastive(image_embeds[:, 0], texts, is_real, momentum)
        if explained is not None:  # eq. 4-5; ASAP's code: itm_head_m on t_cls + UtilsB F_v, 2-way
            with record_function(f"asap.loss.{IED}"):
                ied_in = self.delta * explained.pooled_vision + explained.text[:, 0]  # (B, D)
                logits = self.ied_head(ied_in)  # (B, 1) or (B, 2)
                if cfg.ied_form == "official":
                    losses[IED] = ied_official_loss(logits, batch["binary_label"])
                else:
                    losses[IED] = ied_loss(logits.squeeze(-1), is_real)
        if a.mgca:
            with record_function(f"asap.loss.{MGCA}"):
                losses[MGCA] = mgca_term(
                    fused.maps, batch["token_labels"], batch["patch_labels"], cfg.mgca.form, cfg.defects
                )
        if a.pmm:  # eq. 12 on i_pat^v of the text rows
            with record_function(f"asap.loss.{PMM}"):
                targets = pmm_targets(batch["patch_labels"], batch["has_box"], hnp=a.hnp)
                patch_logits = self.patch_head(fused.patches).squeeze(-1)  # (B, N)
                if cfg.pmm_form == "official":
                    losses[PMM] = pmm_official_loss(patch_logits, targets, cfg.defects.pmm_ignored_log2)
                else:
                    losses[PMM] = pmm_loss(patch_logits, targets)
        losses.update(self._dgm_losses(out, batch, momentum, weight))
        return losses

    # ------------------------------------------------------------------ training terms
    def _dgm_losses(
        self, out: ASAPOutput, batch: Mapping[str, Any], momentum: dict[str, Any] | None, weight: float
    ) -> dict[str, Tensor]:
        """Supp. §6: binary, multi-label, box (L1 + GIoU) and token losses (distilled with `weight`)."""
        # HAMMER regresses every sample, no-box ones to the zero box (the IoU protocol scores ~0 boxes as hits);
        # loss.box_samples=boxed regresses only the pairs with an edited face
        soft = None if momentum is None else momentum["token_probs"]
        losses = {}
        with record_function(f"asap.loss.{BIC}"):
            losses[BIC] = binary_loss(out.binary_logits, batch["binary_label"])
        with record_function(f"asap.loss.{MLC}"):
            losses[MLC] = multilabel_loss(out.multilabel_logits, batch["multilabel"])
        with record_function(f"asap.loss.{BBOX}+{GIOU}"):
            boxed = batch["has_box"] if self.loss_cfg.box_samples == "boxed" else None  # (B,) or every sample
            losses[BBOX], losses[GIOU] = box_loss(out.box_pred, batch["box"], boxed)
        with record_function(f"asap.loss.{TMG}"):
            losses[TMG] = token_loss(out.token_logits, batch["token_labels"], soft, distill_weight=weight)
        return losses

    def _contrastive_inputs(
        self, image_cls: Tensor, texts: dict[str, EncodedText], is_real: Tensor, momentum: dict[str, Any] | None
    ) -> tuple[Tensor, dict[str, tuple[Tensor, Tensor | None, dict[str, Any]]]]:
        """i_cls projected (B, E); per contrastive text kind: its projected [CLS] (B, E), the anchors of its diagonal
        target (real pairs for text and explanation, eq. 2; every pair for captions, eq. 1) and its momentum keywords.
        """
        image_feat = self.alignment.image(image_cls)  # (B, E)
        anchors = {"text": is_real, "caption": None, "explanation": is_real}
        kinds = ["text"] + [k for k in AUX_TEXTS if getattr(self.ablation, k) and k in texts]
        per_kind = {}
        for kind in kinds:
            text_feat = self.alignment.text(texts[kind].embeds[:, 0])  # (B, E)
            extra = {} if momentum is None else dict(momentum["contrastive"][kind])
            per_kind[kind] = (text_feat, anchors[kind], extra)
        return image_feat, per_kind

    def _contrastive(
        self,
        image_cls: Tensor,
        texts: dict[str, EncodedText],
        is_real: Tensor,
        momentum: dict[str, Any] | None,
    ) -> dict[str, Tensor]:
        """Eq. 3 over i2t/t2i (real pairs, HAMMER), i2c/c2i (all pairs, eq. 1), i2e/e2i (real pairs, eq. 2).

        With an auxiliary text on: {"vlc": eq. 3} (part of L_LMA, eq. 6). Without (baseline): HAMMER's
        image-text term {"itc": (i2t + t2i) / 2} under its own weight.
        """
        image_feat, per_kind = self._contrastive_inputs(image_cls, texts, is_real, momentum)
        tau = self.alignment.temperature
        terms = {
            kind: contrastive_terms(image_feat, text_feat, tau, anchor, **extra)
            for kind, (text_feat, anchor, extra) in per_kind.items()
        }
        if len(terms) == 1:
            return {ITC: vlc_loss(*terms["text"])}
        return {
            VLC: vlc_loss(
                *terms["text"], *terms.get("caption", (None, None)), *terms.get("explanation", (None, None))
            )
        }

    def _official_contrastive(
        self,
        image_cls: Tensor,
        texts: dict[str, EncodedText],
        is_real: Tensor,
        momentum: dict[str, Any] | None,
    ) -> dict[str, Tensor]:
        """`loss.contrastive_form=official` (asap.losses.official_contrastive): {"mac": HAMMER's loss_MAC} and,
        with an auxiliary text on, {"aux_vlc": ASAP's loss_eT} (models/ASAP.py l. 206-303).

        Anchors of the diagonal target: real rows for text and explanation, every row for captions; each term a
        mean over the batch. The i2p soft target comes from the p2i similarities with `loss.defects.i2p_target_typo`.
        """
        tau = self.alignment.temperature
        image_feat, per_kind = self._contrastive_inputs(image_cls, texts, is_real, momentum)
        terms: dict[str, list[Tensor]] = {}
        for kind, (text_feat, anchor, extra) in per_kind.items():
            if kind == "explanation" and self.loss_cfg.defects.i2p_target_typo and "soft_targets" in extra:
                extra["soft_targets"] = (extra["soft_targets"][1], extra["soft_targets"][1])  # l. 262
            i2x, x2i = contrastive_terms(image_feat, text_feat, tau, anchor, reduction="batch", **extra)
            x2x = self_contrastive(text_feat, tau, extra.get("text_keys"))  # (B+K, E) keys: the queue appended
            terms[kind] = [i2x, x2i, x2x]
        image_keys = None if momentum is None else momentum["image_keys"]  # (B+K, E); None: the online features
        i2i = self_contrastive(image_feat, tau, image_keys)  # against the momentum images + image queue
        i2t, t2i, t2t = terms.pop("text")
        losses = {MAC: mac_loss(i2t, t2i, i2i, t2t)}
        if terms:
            losses[AUX_VLC] = aux_vlc_loss([term for kind in terms for term in terms[kind]])
        return losses

    @torch.no_grad()
    def _momentum_outputs(self, batch: Mapping[str, Any], weight: float) -> dict[str, Any]:
        """Momentum features, queues and soft targets (ALBEF), token probabilities (HAMMER); then enqueue.

        {"contrastive": per kind, the `contrastive_terms` keywords (keys (B+K, E) with the queue as it was before
        this step's enqueue); "image_keys": the image's (B+K, E); "token_probs": (B, L-1, 2)}.
        """
        assert self.momentum is not None
        m = self.momentum
        m.update(self.momentum_pairs())
        B, L = batch["input_ids"].shape
        image_embeds = m["image_encoder"](batch["image"])  # (B, 1+N, D)
        aux = [k for k in AUX_TEXTS if getattr(self.ablation, k)]  # the contrastive terms' texts
        cls_only = aux if self.fast_paths.caption_cls_only else ()  # only their [CLS] rows are read
        texts = encode_texts(m["text_encoder"], batch, aux, self.fast_paths, cls_only)
        fused_text, _ = m["text_biased_encoder"](texts["text"].embeds, texts["text"].packing, image_embeds)
        token_probs = m["token_head"](fused_text[:, 1:L]).softmax(dim=-1)  # (B, L-1, 2)
        feats = {"image": m["alignment"].image(image_embeds[:, 0])}  # (B, E) each
        feats |= {kind: m["alignment"].text(texts[kind].embeds[:, 0]) for kind in ["text", *aux]}
        # HAMMER's *_feat_all, once per kind and step: new tensors, so the enqueue below leaves what the losses read
        keys = {kind: keys_with_queue(feat, m.queue(kind)) for kind, feat in feats.items()}  # (B+K, E) each
        contrastive = {}
        for kind in ["text", *aux]:
            contrastive[kind] = dict(
                image_keys=keys["image"],
                text_keys=keys[kind],
                soft_targets=momentum_targets(
                    feats["image"],
                    feats[kind],
                    self.alignment.temperature,
                    image_keys=keys["image"],
                    text_keys=keys[kind],
                ),
                distill_alpha=weight,
            )
        m.enqueue(feats)
        return {"contrastive": contrastive, "image_keys": keys["image"], "token_probs": token_probs}


TEXT_PASSES = ("joint", "each")


def encode_texts(
    encoder: TextEncoder,
    batch: Mapping[str, Any],
    kinds: list[str],
    fast_paths: FastPaths | None = None,
    cls_only: Collection[str] | None = None,
) -> dict[str, EncodedText]:
    """{"text": ..., kind: ...}: text, caption, explanation through E_t, each returned at its own length.

    fast_paths (default: all on): `text_passes` "joint" runs every kind in one E_t pass (`TextEncoder`), "each"
    one pass per kind; `packed_rows` makes each text's `Packing` (kept in `EncodedText`, reused by E_mm^t) the real
    tokens only, so the projections and feed-forward blocks skip padding (padding rows zero). The `cls_only` kinds (default: the `cls_only_texts`) are read at [CLS] only, so E_t's last layer
    computes that row alone, (B, 1, D). Padding positions get id 0 and mask 0 (masked out everywhere, so their id
    does not matter).
    """
    fast = fast_paths or FastPaths()
    cls_only = fast.cls_only_texts if cls_only is None else cls_only
    ids = {"text": (batch["input_ids"], batch["attention_mask"])}  # (B, L) each
    for kind in kinds:
        if f"{kind}_ids" not in batch:
            raise ConfigError(
                f"the ablation uses {kind}s but the batch has no `{kind}_ids`: load them in the data config "
                f"(data.load_{kind}) or switch ablation.{kind} off"
            )
        ids[kind] = (batch[f"{kind}_ids"], batch[f"{kind}_mask"])
    packings = {kind: Packing.of(mask, fast.packed_rows) for kind, (_, mask) in ids.items()}
    encoded: dict[str, EncodedText] = {}
    for group in text_pass_groups(list(ids), fast.text_passes):
        outputs = encoder([(ids[kind][0], packings[kind]) for kind in group], [kind in cls_only for kind in group])
        for kind, embeds in zip(group, outputs, strict=True):
            encoded[kind] = EncodedText(embeds, packings[kind])  # (B, L_kind or 1, D)
    return encoded


def text_pass_groups(kinds: list[str], passes: str = "joint") -> list[list[str]]:
    """The kinds of text that share each E_t pass: all in one ("joint") or one pass each ("each")."""
    if passes not in TEXT_PASSES:
        raise ValueError(f"text passes must be one of {TEXT_PASSES}, got {passes!r}")
    return [kinds] if passes == "joint" else [[kind] for kind in kinds]
