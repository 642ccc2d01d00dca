"""Text-biased multimodal encoder E_mm^t (ASAP §3, Fig. 2; HAMMER's fusion layers of BERT).

{t_cls^t, t_tok^t} = E_mm^t(E_t(T), E_v(I)): text tokens are the queries; each layer is BERT self-attention,
cross-attention to the image tokens and a feed-forward block (post-norm, as BERT). The cross-attention of the
MGCA layers can return its text->image map A (eq. 7) for the MGCA loss (eq. 9). The image keys and values of the
cross-attention can be computed once and shared by several text batches on the same images (text and explanation).
Where only t_cls^t is used (IED, eq. 4), the last layer computes the [CLS] row alone: the same value, less work.
The layers run on the rows of E_t's `Packing` (`asap.models.packing`): with the packed rows, the projections and
feed-forward blocks see the real tokens only.
"""

from __future__ import annotations

from collections.abc import Collection

from torch import Tensor, nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertLayer

from asap.models.attention import AttentionMap, MultiHeadAttention
from asap.models.packing import Packing

ImageKV = tuple[Tensor, Tensor]  # cross-attention keys and values of the image tokens, (B, H, 1+N, d) each

# BERT / ALBEF layer parameter names -> FusionLayer names (prefix match)
BERT_LAYER_KEYS = {
    "attention.self.query": "self_attention.query",
    "attention.self.key": "self_attention.key",
    "attention.self.value": "self_attention.value",
    "attention.output.dense": "self_attention.output",
    "attention.output.LayerNorm": "self_attention_norm",
    "crossattention.self.query": "cross_attention.query",
    "crossattention.self.key": "cross_attention.key",
    "crossattention.self.value": "cross_attention.value",
    "crossattention.output.dense": "cross_attention.output",
    "crossattention.output.LayerNorm": "cross_attention_norm",
    "intermediate.dense": "ffn.0",
    "output.dense": "ffn.2",
    "output.LayerNorm": "ffn_norm",
}


def fusion_key(bert_key: str) -> str | None:
    """`attention.self.query.weight` -> `self_attention.query.weight`; None for a key with no counterpart."""
    for src, dst in BERT_LAYER_KEYS.items():
        if bert_key.startswith(src + "."):
            return dst + bert_key[len(src) :]
    return None


class FusionLayer(nn.Module):
    """Self-attention over text, cross-attention to the image, feed-forward; each post-norm with residual."""

    def __init__(self, config: BertConfig, image_width: int) -> None:
        super().__init__()
        D, eps = config.hidden_size, config.layer_norm_eps
        heads, attn_drop = config.num_attention_heads, config.attention_probs_dropout_prob
        self.self_attention = MultiHeadAttention(D, heads, dropout=attn_drop)
        self.self_attention_norm = nn.LayerNorm(D, eps=eps)
        self.cross_attention = MultiHeadAttention(D, heads, context_dim=image_width, dropout=attn_drop)
        self.cross_attention_norm = nn.LayerNorm(D, eps=eps)
        self.ffn = nn.Sequential(
            nn.Linear(D, config.intermediate_size), nn.GELU(), nn.Linear(config.intermediate_size, D)
        )
        self.ffn_norm = nn.LayerNorm(D, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        rows: Tensor,
        packing: Packing,
        image: Tensor | None,
        return_map: bool = False,
        image_kv: ImageKV | None = None,
        cls_only: bool = False,
    ) -> tuple[Tensor, AttentionMap | None]:
        """The text's rows (T, D) of `packing`; image (B, 1+N, Dv) or its `image_kv` -> rows (T, D), map (B, L, 1+N)
        or None.

        cls_only: compute the [CLS] rows alone (every real token is still a key) -> (B, D), map (B, 1, 1+N).
        """
        keys_values = self.self_attention.keys_values(rows, packing)  # (B, H, L, d) each
        query, query_packing = rows, packing
        if cls_only:
            query, query_packing = rows[packing.cls_rows][:, None], None  # (B, 1, D)
        attended, _ = self.self_attention(
            query, None, key_mask=packing.key_mask, keys_values=keys_values, packing=query_packing
        )
        x = self.self_attention_norm(query + self.dropout(attended))
        attended, attention = self.cross_attention(  # image has no padding
            x, image, return_map=return_map, keys_values=image_kv, packing=query_packing
        )
        x = self.cross_attention_norm(x + self.dropout(attended))
        out = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return (out[:, 0] if cls_only else out), attention


class TextBiasedEncoder(nn.Module):
    """The stack of fusion layers; maps are materialised only for the layers in `map_layers`."""

    def __init__(self, config: BertConfig, num_layers: int, image_width: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(config, image_width) for _ in range(num_layers))

    def image_keys_values(self, image: Tensor) -> list[ImageKV]:
        """Per layer, the cross-attention keys and values of image (B, 1+N, Dv), to share between text batches."""
        return [layer.cross_attention.keys_values(image) for layer in self.layers]

    def forward(
        self,
        text: Tensor,
        packing: Packing,
        image: Tensor,
        map_layers: Collection[int] = (),
        image_kv: list[ImageKV] | None = None,
        cls_only: bool = False,
    ) -> tuple[Tensor, list[AttentionMap]]:
        """text (B, L, D) from E_t with its `Packing` (E_t's own: real tokens only, or every position), image
        (B, 1+N, Dv) from E_v -> fused text (B, L, D) (zeros at rows not computed), maps of `map_layers`.

        image_kv: `image_keys_values(image)`, when already computed for another text batch on the same images.
        cls_only: the last layer computes t_cls^t alone; the output is then (B, 1, D).
        """
        wanted = {i % len(self.layers) for i in map_layers}
        last = len(self.layers) - 1
        rows = packing.pack(text)  # (T, D)
        maps = []
        for i, layer in enumerate(self.layers):
            kv = None if image_kv is None else image_kv[i]
            rows, attention = layer(rows, packing, image, i in wanted, kv, cls_only and i == last)
            if attention is not None:
                maps.append(attention)
        return (rows[:, None] if cls_only else packing.pad(rows)), maps

    def load_bert_layers(self, bert_layers: list[BertLayer]) -> None:
        """Copy the weights of BERT's upper layers (self-attention, FFN); cross-attention stays as initialised."""
        for layer, bert_layer in zip(self.layers, bert_layers, strict=True):
            state = {fusion_key(k): v for k, v in bert_layer.state_dict().items() if fusion_key(k)}
            missing, unexpected = layer.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith("cross_attention") for k in missing):
                raise RuntimeError(
                    f"BERT layer does not map onto FusionLayer: missing {missing}, unexpected {unexpected}"
                )
