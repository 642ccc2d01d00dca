"""Image encoder E_v (ASAP §3.1): a timm ViT, E_v(I) = {i_cls, i_pat} (paper: ViT-B/16 at 256x256)."""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
from timm.layers import PatchEmbed, build_sincos2d_pos_embed, resample_abs_pos_embed
from torch import Tensor, nn

from asap.errors import ConfigError
from asap.models.attention import use_fused_attn
from asap.models.config import ImageEncoderConfig


class ImageEncoder(nn.Module):
    """Patch tokens with the class token first: image (B, 3, H, W) -> (B, 1+N, D)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit
        self.width: int = vit.embed_dim

    def forward(self, image: Tensor) -> Tensor:
        return self.vit.forward_features(image)  # (B, 1+N, D), final norm applied


class ConvStemPatchEmbed(PatchEmbed):
    """ViT-C's convolutional stem (Xiao et al. 2021) as a timm `embed_layer`: (B, 3, H, W) -> (B, N, D).

    log2(patch_size) stride-2 3x3 conv-BN-ReLU stages (widths doubling from 24, capped at D), then a 1x1 conv to
    D: the same patch grid as the linear patch embedding, with an inductive bias that trains from scratch fast.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        patch, dim = self.patch_size[0], self.proj.out_channels
        if self.patch_size[0] != self.patch_size[1] or patch & (patch - 1):
            raise ConfigError(
                f"model.image_encoder.stem=conv needs a power-of-two patch_size, got {self.patch_size}"
            )
        widths = [self.proj.in_channels] + [min(dim, 24 * 2**i) for i in range(int(math.log2(patch)))]
        stages: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            stages += [
                nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        self.proj = nn.Sequential(*stages, nn.Conv2d(widths[-1], dim, 1))  # (B, D, H/p, W/p)


def sincos_pos_embed(grid_size: tuple[int, int], dim: int) -> Tensor:
    """(1, 1+N, D) fixed 2-D sin-cos position embedding (MAE / MoCo v3), zeros for the class token."""
    patches = build_sincos2d_pos_embed(list(grid_size), dim)  # (N, D)
    return torch.cat([torch.zeros(1, dim), patches])[None]


def build_image_encoder(
    cfg: ImageEncoderConfig, image_size: int, patch_size: int, load_weights: bool = True
) -> ImageEncoder:
    """The timm model `cfg.name` with the given sizes and stem; weights from the hub or a file only when asked."""
    kwargs = dict(
        img_size=image_size,
        patch_size=patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        drop_path_rate=cfg.drop_path_rate,
        num_classes=0,
        global_pool="token",
    )
    if cfg.stem == "conv":
        kwargs["embed_layer"] = ConvStemPatchEmbed
    pretrained = cfg.pretrained if load_weights else None
    if pretrained and pretrained != "hub":
        if not Path(pretrained).is_file():
            raise ConfigError(f"model.image_encoder.pretrained: no such weight file {pretrained!r}")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained))
    vit = timm.create_model(cfg.name, pretrained=bool(pretrained), **kwargs)
    if getattr(vit, "cls_token", None) is None:
        raise ConfigError(
            f"model.image_encoder.name {cfg.name!r} has no class token (i_cls); use a ViT that has one"
        )
    for module in vit.modules():  # timm's attention blocks follow our global choice, not TIMM_FUSED_ATTN
        if hasattr(module, "fused_attn"):
            module.fused_attn = use_fused_attn()
    if cfg.pos_embed_init == "sincos" and not pretrained:
        with torch.no_grad():
            vit.pos_embed.copy_(sincos_pos_embed(vit.patch_embed.grid_size, cfg.embed_dim))
    return ImageEncoder(vit)


def resize_pos_embed(pos_embed: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Interpolate a (1, 1+n*n, D) position embedding (class token first) to `grid_size` patches (bicubic)."""
    if pos_embed.shape[1] == 1 + grid_size[0] * grid_size[1]:
        return pos_embed
    with torch.no_grad():
        return resample_abs_pos_embed(pos_embed.float(), new_size=list(grid_size), num_prefix_tokens=1)
