"""Image encoder E_v (ASAP §3.1): a timm ViT, E_v(I) = {i_cls, i_pat} (paper: ViT-B/16 at 256x256)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from asap.models.config import ConfigError, ImageEncoderConfig


class ImageEncoder(nn.Module):
    """Patch tokens with the class token first: image (B, 3, H, W) -> (B, 1+N, D)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit
        self.width: int = vit.embed_dim

    def forward(self, image: Tensor) -> Tensor:
        return self.vit.forward_features(image)  # (B, 1+N, D), final norm applied


def build_image_encoder(
    cfg: ImageEncoderConfig, image_size: int, patch_size: int, load_weights: bool = True
) -> ImageEncoder:
    """The timm model `cfg.name` with the given sizes; weights from the hub or a file only when asked."""
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
    return ImageEncoder(vit)


def resize_pos_embed(pos_embed: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Interpolate a (1, 1+n*n, D) position embedding (class token first) to `grid_size` patches (bicubic)."""
    if pos_embed.shape[1] == 1 + grid_size[0] * grid_size[1]:
        return pos_embed
    with torch.no_grad():
        return resample_abs_pos_embed(pos_embed.float(), new_size=list(grid_size), num_prefix_tokens=1)
