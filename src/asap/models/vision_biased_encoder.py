"""Vision-biased multimodal encoder E_mm^v (ASAP eq. 11; HAMMER's it_cross_attn + aggregator).

{i_cls^v, i_pat^v} = E_mm^v(E_v(I), E_t(T)): image tokens are the queries and attend to the text tokens
(pre-norm, residual); the image's queries can be computed once and shared by several text batches on the same
images (text and explanation). The patch features i_pat^v feed PMM (eq. 12); an attention aggregator with a learnable
query pools them into F_v, the input of the box detector (supp. §6.1) and of M_it = delta F_v + F_t (eq. 4).

Two blocks (`model.vision_block`): "hammer", HAMMER's it_cross_attn, x = I + CrossAttn(LN(I), LN(T)); "asap",
ASAP's Multilmodelattention (models/ASAP.py l. 16-27, 315-318), x = LN(I) + CrossAttn(SelfAttn(LN(I)), LN(T)),
the residual on the normalised image and no norm between the two attentions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from asap.models.attention import MultiHeadAttention


@dataclass
class VisionBiasedFeatures:
    patches: Tensor  # (B, N, D) normalised patch features i_pat^v (PMM input, aggregator keys)
    pooled: Tensor  # (B, D) F_v, aggregated by the learnable query


class VisionBiasedEncoder(nn.Module):
    def __init__(self, dim: int, num_heads: int, block: str = "hammer") -> None:
        super().__init__()
        self.block = block
        self.cross_attention_norm = nn.LayerNorm(dim)
        # "asap": the image's self-attention before the cross-attention (Multilmodelattention.selfatten)
        self.self_attention = MultiHeadAttention(dim, num_heads) if block == "asap" else None
        self.cross_attention = MultiHeadAttention(dim, num_heads)
        self.aggregator_norm = nn.LayerNorm(dim)
        self.aggregator_query = nn.Parameter(torch.zeros(1, 1, dim))
        self.aggregator = MultiHeadAttention(dim, num_heads)
        # HAMMER's cls_token_local std at every width, not `model.init_std`: the query is used only through
        # aggregator_norm, so its scale never reaches F_v; it sets only how far an Adam step turns it (lr / std),
        # and following init_std (tiny: 0.05) changed the smoke run's numbers (docs/fidelity.md)
        nn.init.trunc_normal_(self.aggregator_query, std=0.02)

    def image_queries(self, image: Tensor) -> Tensor:
        """The cross-attention queries of image (B, 1+N, D), (B, H, 1+N, d): to share between text batches."""
        x = self.cross_attention_norm(image)  # (B, 1+N, D)
        if self.self_attention is not None:
            x = self.self_attention(x, x)[0]  # (B, 1+N, D), no mask: every image token is real
        return self.cross_attention.queries(x)

    def forward(
        self, image: Tensor, text: Tensor, text_mask: Tensor, image_queries: Tensor | None = None
    ) -> VisionBiasedFeatures:
        """image (B, 1+N, D) from E_v, text (B, L, D) from E_t, text_mask (B, L) -> patches, pooled.

        image_queries: `image_queries(image)`, when already computed for another text batch on the same images.
        """
        if image_queries is None:
            image_queries = self.image_queries(image)  # (B, H, 1+N, d)
        # HAMMER normalises queries and keys with the same LayerNorm (text and image widths are equal)
        attended, _ = self.cross_attention(
            None, self.cross_attention_norm(text), key_mask=text_mask, queries=image_queries
        )
        residual = image if self.self_attention is None else self.cross_attention_norm(image)  # (B, 1+N, D)
        fused = residual + attended  # (B, 1+N, D)
        patches = self.aggregator_norm(fused[:, 1:])  # (B, N, D) without the image [CLS]
        query = self.aggregator_norm(self.aggregator_query).expand(image.shape[0], -1, -1)  # (B, 1, D)
        pooled, _ = self.aggregator(query, patches)  # (B, 1, D)
        return VisionBiasedFeatures(patches=patches, pooled=pooled.squeeze(1))
