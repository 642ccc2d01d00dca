"""Text encoder E_t (ASAP §3.1): the lower BERT layers, E_t(T) = {t_cls, t_tok} (paper: bert-base-uncased).

As in ALBEF/HAMMER the first `text_layers` BERT layers encode text alone; the remaining layers become the
text-biased multimodal encoder (`asap.models.text_biased_encoder`). Text, caption and explanation share it.
Where only the [CLS] row is read (the caption: c_cls of eq. 1), the last layer computes that row alone: the same
value, less work (all tokens are still its keys).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BertConfig, BertModel
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.bert.modeling_bert import BertLayer

from asap.models.config import ConfigError, TextEncoderConfig


class TextEncoder(nn.Module):
    """BERT embeddings + the first layers: ids (B, L), mask (B, L) -> (B, L, D)."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert
        self.width: int = bert.config.hidden_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor, cls_only: bool = False) -> Tensor:
        """ids (B, L), mask (B, L) -> (B, L, D); with cls_only the [CLS] row alone, (B, 1, D)."""
        if not cls_only:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.bert.embeddings(input_ids=input_ids)  # (B, L, D)
        # the mask in the form BertModel gives its layers (it depends on the attention implementation)
        mask = create_bidirectional_mask(
            config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        *lower, last = self.bert.encoder.layer
        for layer in lower:
            hidden = layer(hidden, attention_mask=mask)
        return cls_row(last, hidden, attention_mask)  # (B, 1, D)


def cls_row(layer: BertLayer, hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """BERT layer `layer` on hidden (B, L, D) for the [CLS] query only (every real token a key) -> (B, 1, D).

    The same operations as `BertLayer.forward` (post-norm self-attention, then the feed-forward block), on one row.
    """
    attention = layer.attention.self
    B, L, _ = hidden.shape
    H, d = attention.num_attention_heads, attention.attention_head_size
    query = attention.query(hidden[:, :1]).view(B, 1, H, d).transpose(1, 2)  # (B, H, 1, d)
    key = attention.key(hidden).view(B, L, H, d).transpose(1, 2)  # (B, H, L, d)
    value = attention.value(hidden).view(B, L, H, d).transpose(1, 2)
    p = attention.dropout.p if attention.training else 0.0
    keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L) True = attend
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=keys, dropout_p=p)  # (B, H, 1, d)
    attended = layer.attention.output(context.transpose(1, 2).reshape(B, 1, H * d), hidden[:, :1])  # (B, 1, D)
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
