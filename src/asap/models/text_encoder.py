"""Text encoder E_t (ASAP §3.1): the lower BERT layers, E_t(T) = {t_cls, t_tok} (paper: bert-base-uncased).

As in ALBEF/HAMMER the first `text_layers` BERT layers encode text alone; the remaining layers become the
text-biased multimodal encoder (`asap.models.text_biased_encoder`). Text, caption and explanation share it and
its forward runs them in one pass: their token rows go through each layer's projections and feed-forward block
together, each text's attention runs at its own length (`asap.models.packing`: real tokens only, or every position).
Where only the [CLS] row is read (the caption: c_cls of eq. 1), the last layer computes that row alone: the same
value, less work (all tokens are still its keys). tests/test_equivalence.py checks every row against BERT's own
forward. BERT's attention function follows the global fused-attention choice (`asap.models.attention`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import BertLayer, eager_attention_forward

from asap.errors import ConfigError
from asap.models.attention import padding_bias, use_fused_attn
from asap.models.config import TextEncoderConfig
from asap.models.packing import Packing

TextBatch = tuple[Tensor, Packing]  # ids (B, L) and their Packing (attention mask, rows computed)
AUX_TEXTS = ("caption", "explanation")


@dataclass
class EncodedText:
    embeds: Tensor  # (B, L, D) E_t output; (B, 1, D) for a text read at [CLS] only
    packing: Packing  # the rows E_t computed, reused by E_mm^t

    @property
    def mask(self) -> Tensor:
        """(B, L) 1 = token."""
        return self.packing.key_mask


class TextEncoder(nn.Module):
    """BERT embeddings + the first layers: text batches [(ids (B, L), Packing), ...] -> [(B, L, D), ...]."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert
        self.width: int = bert.config.hidden_size

    def forward(self, texts: Sequence[TextBatch], cls_only: Sequence[bool] | None = None) -> list[Tensor]:
        """Several text batches in one pass -> per batch (B, L, D), or its [CLS] row (B, 1, D) where `cls_only`.

        Each batch's `Packing` says which rows are computed: the real tokens only (padding rows of the output are
        zeros) or every position, as BERT's forward. The values are BERT's at every real token.
        """
        cls_only = list(cls_only or [False] * len(texts))
        packings = [packing for _, packing in texts]
        embeddings = [self.bert.embeddings(input_ids=ids) for ids, _ in texts]  # (B, L, D) each
        rows = _cat([p.pack(x) for p, x in zip(packings, embeddings, strict=True)])  # (T, D)
        *lower, last = self.bert.encoder.layer
        for layer in lower:
            rows = bert_layer_rows(layer, rows, packings)
        rows = bert_layer_rows(last, rows, packings, cls_only)
        return [
            part[:, None] if c else p.pad(part)  # (B, 1, D) or (B, L, D)
            for p, c, part in zip(
                packings, cls_only, rows.split(output_sizes(packings, cls_only)), strict=True
            )
        ]


def encode_texts(
    encoder: TextEncoder,
    batch: Mapping[str, Any],
    kinds: Sequence[str],
    cls_only: Collection[str] = ("caption",),
    packed: bool = True,
) -> dict[str, EncodedText]:
    """{"text": ..., kind: ...}: the text and the auxiliary `kinds` through E_t in one pass, each at its own length.

    cls_only: the kinds read at [CLS] only (eq. 1 reads c_cls alone): E_t's last layer computes that row, (B, 1, D).
    packed: each text's `Packing` (kept in `EncodedText`, reused by E_mm^t) is its real tokens only, so the
    projections and feed-forward blocks skip padding (padding rows zero); False computes the padding rows too
    (`loss.defects.mgca_padding`: their scores enter MGCA). Padding positions get id 0 and mask 0 (masked out
    everywhere, so their id does not matter).
    """
    ids = {"text": (batch["input_ids"], batch["attention_mask"])}  # (B, L) each
    for kind in kinds:
        if f"{kind}_ids" not in batch:
            raise ConfigError(
                f"the ablation uses {kind}s but the batch has no `{kind}_ids`: load them in the data config "
                f"(data.load_{kind}) or switch ablation.{kind} off"
            )
        ids[kind] = (batch[f"{kind}_ids"], batch[f"{kind}_mask"])
    packings = {kind: Packing.of(mask, packed) for kind, (_, mask) in ids.items()}
    outputs = encoder([(ids[kind][0], packings[kind]) for kind in ids], [kind in cls_only for kind in ids])
    return {kind: EncodedText(embeds, packings[kind]) for kind, embeds in zip(ids, outputs, strict=True)}


def bert_layer_rows(
    layer: BertLayer, rows: Tensor, packings: Sequence[Packing], cls_only: Sequence[bool] | None = None
) -> Tensor:
    """BERT layer `layer` on the rows (T, D) of one or more text batches (`packings`, rows in their order) -> rows.

    A batch marked `cls_only` gives its [CLS] rows alone, (B, D), in place of its rows. The same operations as
    `BertLayer.forward` (post-norm self-attention with BERT's own attention function, then the feed-forward
    block): the projections and the feed-forward block run once on all given rows, the attention per batch in its
    padded (B, H, L, d) layout with every real token as a key.
    """
    cls_only = list(cls_only or [False] * len(packings))
    attention = layer.attention.self
    H, d = attention.num_attention_heads, attention.attention_head_size
    sizes = [p.count for p in packings]
    residual = rows  # (T', D): the rows this layer computes
    if any(cls_only):
        parts = zip(packings, cls_only, rows.split(sizes), strict=True)
        residual = _cat([part[p.cls_rows] if c else part for p, c, part in parts])
    keys, values = attention.key(rows).split(sizes), attention.value(rows).split(sizes)  # (T_p, D) each
    queries = attention.query(residual).split(output_sizes(packings, cls_only))
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(
        attention.config._attn_implementation, eager_attention_forward
    )
    contexts = []
    for p, c, key, value, query in zip(packings, cls_only, keys, values, queries, strict=True):
        B, L = p.batch, p.length
        key = p.pad(key).view(B, L, H, d).transpose(1, 2)  # (B, H, L, d)
        value = p.pad(value).view(B, L, H, d).transpose(1, 2)
        query = (query[:, None] if c else p.pad(query)).view(B, -1, H, d).transpose(1, 2)  # (B, H, Lq, d)
        context, _ = attend(
            attention,
            query,
            key,
            value,
            padding_bias(p.key_mask, query.dtype),  # (B, 1, 1, L)
            dropout=attention.dropout.p if attention.training else 0.0,
            scaling=attention.scaling,
        )  # (B, Lq, H, d)
        context = context.reshape(B, -1, H * d)
        contexts.append(context[:, 0] if c else p.pack(context))  # (B, D) or (T_p, D)
    attended = layer.attention.output(_cat(contexts), residual)
    return layer.output(layer.intermediate(attended), attended)


def output_sizes(packings: Sequence[Packing], cls_only: Sequence[bool]) -> list[int]:
    """The rows each text batch contributes to a layer's output: B for a [CLS]-only batch, else T_p."""
    return [p.batch if c else p.count for p, c in zip(packings, cls_only, strict=True)]


def _cat(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def bert_config(cfg: TextEncoderConfig) -> BertConfig:
    """The BertConfig of the whole BERT (text + fusion layers) from the `bert` keyword arguments; its attention
    function sdpa or eager as `use_fused_attn()` says (unless `bert` names one)."""
    attention = "sdpa" if use_fused_attn() else "eager"
    try:
        return BertConfig(**{"attn_implementation": attention, **cfg.bert})
    except TypeError as err:
        raise ConfigError(f"model.text_encoder.bert: {err}") from err


def build_text_encoder(
    cfg: TextEncoderConfig, load_weights: bool = True
) -> tuple[TextEncoder, list[BertLayer]]:
    """(E_t with the first `text_layers` layers, the remaining BERT layers for the text-biased encoder).

    Weights come from `cfg.pretrained` (hub name or folder) only when asked; they must fit `cfg.bert`.
    """
    config = bert_config(cfg)
    if cfg.pretrained and load_weights:
        bert = BertModel.from_pretrained(cfg.pretrained, config=config, add_pooling_layer=False)
    else:
        bert = BertModel(config, add_pooling_layer=False)
    layers = list(bert.encoder.layer)
    bert.encoder.layer = nn.ModuleList(layers[: cfg.text_layers])
    bert.config.num_hidden_layers = cfg.text_layers
    return TextEncoder(bert), layers[cfg.text_layers :]
