"""Text encoder E_t (ASAP §3.1): the lower BERT layers, E_t(T) = {t_cls, t_tok} (paper: bert-base-uncased).

As in ALBEF/HAMMER the first `text_layers` BERT layers encode text alone; the remaining layers become the
text-biased multimodal encoder (`asap.models.text_biased_encoder`). Text, caption and explanation share it.
Where only the [CLS] row is read (the caption: c_cls of eq. 1), the last layer computes that row alone: the same
value, less work (all tokens are still its keys). With `packed`, the layers' projections and feed-forward blocks
run on the real tokens only (`asap.models.packing`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import BertLayer, eager_attention_forward

from asap.models.attention import padding_bias
from asap.models.config import ConfigError, TextEncoderConfig
from asap.models.packing import Packing


class TextEncoder(nn.Module):
    """BERT embeddings + the first layers: ids (B, L), mask (B, L) -> (B, L, D)."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert
        self.width: int = bert.config.hidden_size

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, cls_only: bool = False, packed: bool = False
    ) -> Tensor:
        """ids (B, L), mask (B, L) -> (B, L, D); with cls_only the [CLS] row alone, (B, 1, D).

        packed: the layers' projections and feed-forward blocks run on the real tokens only
        (`asap.models.packing`); padding rows of the output are then zeros. Neither option: BERT's own forward.
        """
        if not (cls_only or packed):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        packing = Packing.of(attention_mask if packed else torch.ones_like(attention_mask))
        rows = packing.pack(self.bert.embeddings(input_ids=input_ids))  # (T, D)
        *lower, last = self.bert.encoder.layer
        for layer in lower:
            rows = bert_layer_rows(layer, rows, packing, attention_mask)
        if cls_only:
            return bert_layer_rows(last, rows, packing, attention_mask, cls_only=True)[:, None]  # (B, 1, D)
        return packing.pad(bert_layer_rows(last, rows, packing, attention_mask))  # (B, L, D)


def bert_layer_rows(
    layer: BertLayer, rows: Tensor, packing: Packing, attention_mask: Tensor, cls_only: bool = False
) -> Tensor:
    """BERT layer `layer` on the token rows (T, D) of `packing` -> (T, D); with cls_only the [CLS] rows, (B, D).

    The same operations as `BertLayer.forward` (post-norm self-attention with BERT's own attention function, then
    the feed-forward block); the projections and the feed-forward block see only the given rows, the attention
    the padded (B, H, L, d) layout with every real token (attention_mask (B, L)) as a key.
    """
    attention = layer.attention.self
    B, L = packing.batch, packing.length
    H, d = attention.num_attention_heads, attention.attention_head_size
    key = packing.pad(attention.key(rows)).view(B, L, H, d).transpose(1, 2)  # (B, H, L, d)
    value = packing.pad(attention.value(rows)).view(B, L, H, d).transpose(1, 2)
    residual = rows[packing.cls_rows] if cls_only else rows  # (B, D) or (T, D)
    query = attention.query(residual)
    query = (query[:, None] if cls_only else packing.pad(query)).view(B, -1, H, d).transpose(1, 2)  # (B, H, Lq, d)
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager_attention_forward)
    context, _ = attend(
        attention,
        query,
        key,
        value,
        padding_bias(attention_mask, query.dtype),  # (B, 1, 1, L)
        dropout=attention.dropout.p if attention.training else 0.0,
        scaling=attention.scaling,
    )  # (B, Lq, H, d)
    context = context.reshape(B, -1, H * d)
    context = context[:, 0] if cls_only else packing.pack(context)  # (B, D) or (T, D)
    attended = layer.attention.output(context, residual)
    return layer.output(layer.intermediate(attended), attended)


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
