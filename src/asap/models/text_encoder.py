"""Text encoder E_t (ASAP §3.1): the lower BERT layers, E_t(T) = {t_cls, t_tok} (paper: bert-base-uncased).

As in ALBEF/HAMMER the first `text_layers` BERT layers encode text alone; the remaining layers become the
text-biased multimodal encoder (`asap.models.text_biased_encoder`). Text, caption and explanation share it and
its forward runs them in one pass: their token rows go through each layer's projections and feed-forward block
together, each text's attention runs at its own length (`asap.models.packing`: real tokens only, or every position).
Where only the [CLS] row is read (the caption: c_cls of eq. 1), the last layer computes that row alone: the same
value, less work (all tokens are still its keys).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import BertLayer, eager_attention_forward

from asap.models.attention import padding_bias
from asap.models.config import ConfigError, TextEncoderConfig
from asap.models.packing import Packing

TextBatch = tuple[Tensor, Packing]  # ids (B, L) and their Packing (attention mask, rows computed)


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
            for p, c, part in zip(packings, cls_only, rows.split(output_sizes(packings, cls_only)), strict=True)
        ]

    def bert_forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """BERT's own forward: ids (B, L), mask (B, L) -> (B, L, D), every position computed (the reference)."""
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


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
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager_attention_forward)
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
    """The BertConfig of the whole BERT (text + fusion layers) from the `bert` keyword arguments."""
    try:
        return BertConfig(**cfg.bert)
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
