"""Image transforms of the DGM4 protocol (torchvision transforms v2, so the box follows the flip and the resize).

Train: horizontal flip (p=0.5) -> bicubic resize to S x S -> ALBEF's light RandAugment (two draws, with replacement,
from identity / autocontrast / equalize / brightness / sharpness, each applied with p=0.5, magnitude 7 of 10) ->
CLIP normalisation. Eval: resize -> normalisation. The aspect ratio is not kept, as in the protocol.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def enhance_factor(magnitude: int, max_level: int = 10) -> float:
    """ALBEF's `enhance_level_to_args`: magnitude 7 -> factor 1.36."""
    return magnitude / max_level * 1.8 + 0.1


def protocol_randaugment(num_ops: int = 2, magnitude: int = 7) -> v2.Transform:
    """ALBEF `RandomAugment(2, 7, augs=[Identity, AutoContrast, Equalize, Brightness, Sharpness])`."""
    factor = enhance_factor(magnitude)
    ops = [
        v2.Identity(),
        v2.RandomAutocontrast(p=1.0),
        v2.RandomEqualize(p=1.0),
        v2.ColorJitter(brightness=(factor, factor)),
        v2.RandomAdjustSharpness(sharpness_factor=factor, p=1.0),
    ]
    one_op = v2.RandomApply([v2.RandomChoice(ops)], p=0.5)
    return v2.Compose([one_op] * num_ops)


def build_transform(image_size: int, train: bool, augment: bool = True) -> v2.Compose:
    """PIL image (+ `BoundingBoxes`) -> normalised float (3, S, S) (+ boxes in S x S pixels)."""
    resize = v2.Resize((image_size, image_size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
    steps: list[v2.Transform] = [resize]
    if train:
        steps = [v2.RandomHorizontalFlip(p=0.5), resize]
        if augment:
            steps.append(protocol_randaugment())
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(CLIP_MEAN, CLIP_STD)]
    return v2.Compose(steps)
