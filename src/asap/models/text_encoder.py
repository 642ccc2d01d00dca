"""Text encoder E_t (ASAP §3.1): the lower BERT layers, E_t(T) = {t_cls, t_tok} (paper: bert-base-uncased).

As in ALBEF/HAMMER the first `text_layers` BERT layers encode text alone; the remaining layers become the
text-biased multimodal encoder (`asap.models.text_biased_encoder`). Text, caption and explanation share it.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertLayer

from asap.models.config import ConfigError, TextEncoderConfig


class TextEncoder(nn.Module):
    """BERT embeddings + the first layers: ids (B, L), mask (B, L) -> (B, L, D)."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert
        self.width: int = bert.config.hidden_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)


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
