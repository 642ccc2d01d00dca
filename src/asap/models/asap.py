"""ASAP (Zhang et al.): HAMMER's two multimodal encoders plus LMA, MGCA and PMM, which run only in training.

Inference: E_v(I), E_t(T) -> vision-biased E_mm^v (box, F_v) and text-biased E_mm^t (tokens, F_t) ->
binary / multi-label heads on M_it = delta F_v + F_t (supp. §6). Training adds, each when switched on:
VLC (eq. 1-3) over text, caption and explanation, IED (eq. 4-5), MGCA (eq. 7-9), PMM (eq. 10-12), the DGM4
task losses (supp. §6) and, as an option, ALBEF-style momentum encoders with queues and token distillation.
Official mode (conf/mode/official.yaml, docs/fidelity.md) swaps in, term by term, what ASAP's and HAMMER's training
code compute: `mac` + `aux_vlc` for VLC, the 2-way IED head, MGCA on pre-softmax scores, PMM over all cells, ASAP's
vision-biased block and its two scalars; `loss.defects.*` reproduce the code's defects one by one.
`forward` follows Fig. 2; the training objective (eq. 13) is `asap.models.objective`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.profiler import record_function

from asap.models import objective
from asap.models.alignment import ContrastiveProjection
from asap.models.attention import AttentionMap, mean_text_to_image_attention
from asap.models.config import AblationConfig, LossConfig, ModelConfig
from asap.models.heads import mlp_head, patch_classifier
from asap.models.image_encoder import build_image_encoder
from asap.models.momentum import MomentumModel
from asap.models.text_biased_encoder import ImageKV, TextBiasedEncoder
from asap.models.text_encoder import AUX_TEXTS, EncodedText, bert_config, build_text_encoder, encode_texts
from asap.models.vision_biased_encoder import VisionBiasedEncoder


@dataclass
class ASAPOutput:
    binary_logits: Tensor  # (B, 2) real / fake
    multilabel_logits: Tensor  # (B, 4) FS, FA, TS, TA
    box_pred: Tensor  # (B, 4) sigmoid cx, cy, w, h
    token_logits: Tensor  # (B, L-1, 2) per word-piece, no [CLS]
    losses: dict[str, Tensor] = field(default_factory=dict)  # training only, one entry per term
    text_to_image_attention: Tensor | None = None  # (B, L-1, N) eq. 7, when computed


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


def init_new_weights(module: nn.Module, std: float = 0.02) -> None:
    """HAMMER's init of its own (non-pretrained) parts: truncated normal linears (std 0.02; `model.init_std`),
    unit LayerNorms."""
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
        self.multilabel_delta = (
            nn.Parameter(torch.tensor(float(model.delta_init))) if uses_multilabel_delta else None
        )
        # eq. 4: one logit (paper) | ASAP's itm_head_m: two (official)
        self.ied_head = mlp_head(D, 2 if loss.ied_form == "official" else 1) if ablation.ied else None
        self.patch_head = patch_classifier(D) if ablation.pmm else None
        for part in self._new_parts():
            part.apply(partial(init_new_weights, std=model.new_parts_std))
        if model.text_encoder.pretrained and load_weights:
            self.text_biased_encoder.load_bert_layers(upper_layers)
        # the padding rows' scores enter MGCA (official defect): E_t and E_mm^t compute those rows too
        self.pad_rows = loss.defects.mgca_padding
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

    # ------------------------------------------------------------------ forward (Fig. 2)
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
            image = self.image_encoder(batch["image"])  # (B, 1+N, D) E_v(I) = {i_cls, i_pat}
        with record_function("asap.text_encoder"):  # E_t(T), E_t(C), E_t(P) in one pass
            texts = encode_texts(self.text_encoder, batch, aux, packed=not self.pad_rows)
        with record_function("asap.fuse_text"):  # E_mm^v and E_mm^t on image and text
            shared = self.shared_image(image) if train and a.ied else None  # reused by the explanation's pass
            fused = self.fuse(image, texts["text"], map_layers, shared)  # maps: MGCA layers only
        with record_function("asap.heads"):
            out = self.predict(fused)
        if not train:
            return out
        explained = None
        if a.ied:  # eq. 4: image + explanation through both multimodal encoders, no maps, t_cls^t only
            with record_function("asap.fuse_explanation"):
                explained = self.fuse(image, texts["explanation"], [], shared, cls_only=True)
        weight = self.cfg.momentum.distill_alpha if distill_weight is None else distill_weight
        out.losses = objective.training_losses(self, batch, image, texts, fused, explained, out, weight)
        return out

    def shared_image(self, image_embeds: Tensor) -> SharedImage:
        """The image's projections (B, 1+N, D) -> E_mm^t's keys and values, E_mm^v's queries, computed once."""
        return SharedImage(
            self.text_biased_encoder.image_keys_values(image_embeds),
            self.vision_biased_encoder.image_queries(image_embeds),
        )

    def predict(self, fused: Fused) -> ASAPOutput:
        """The four DGM4 heads on the image-text pass: binary and multi-label on M_it, box on F_v, tokens on t_tok^t."""
        text_cls, vision = fused.text[:, 0], fused.pooled_vision  # F_t, F_v (B, D)
        joint = self.heads_input(vision, text_cls)  # M_it (B, D); ASAP's code: UtilsB
        joint_multilabel = joint  # ASAP's code: UtilsC, its own scalar
        if self.multilabel_delta is not None:
            joint_multilabel = self.heads_input(vision, text_cls, self.multilabel_delta)  # (B, D)
        out = ASAPOutput(
            binary_logits=self.binary_head(joint),
            multilabel_logits=self.multilabel_head(joint_multilabel),
            box_pred=self.box_head(vision).sigmoid(),
            token_logits=self.token_head(self.token_dropout(fused.text[:, 1:])),  # t_tok^t -> (B, L-1, 2)
        )
        if fused.maps:
            L = fused.text.shape[1]
            out.text_to_image_attention = mean_text_to_image_attention([m.probs for m in fused.maps], L)
        return out
