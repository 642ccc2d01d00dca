"""Drawing synthetic news photos (numpy + PIL): a place, people with cartoon faces, and face manipulations.

A face is drawn entirely inside its square box, so re-rendering a scene with one face changed differs from the
original only inside that box. Manipulations paste the changed box back with a trace a detector can learn:
face swap = hard-edged paste of an oversaturated region with a slight colour cast and grain (a swap model's colour
transfer and the blending seam); face attribute = feathered paste of a slightly blurred, washed-out region (a
GAN-like smoothing). The two traces are opposite in saturation, and each is visible at 64x64.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from asap.data.synthetic.world import CAST, HAIR, RGB, SKIN

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class Face:
    person: int  # index into CAST
    expression: str  # smile | frown | surprise
    box: Box  # square, holds the whole head
    shirt: RGB


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    place: str
    faces: tuple[Face, ...]  # left to right
    seed: int  # background details

    def with_face(self, k: int, **changes: object) -> Scene:
        faces = list(self.faces)
        faces[k] = replace(faces[k], **changes)
        return replace(self, faces=tuple(faces))


def _jitter(rng: np.random.Generator, rgb: RGB, amount: int = 14) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)  # type: ignore[return-value]


def _band(draw: ImageDraw.ImageDraw, w: int, top: float, bottom: float, colour: RGB) -> None:
    draw.rectangle([0, int(top), w, int(bottom)], fill=colour)


def _beach(d: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    horizon = h * rng.uniform(0.38, 0.48)
    _band(d, w, 0, horizon, _jitter(rng, (135, 200, 240)))
    _band(d, w, horizon, horizon + h * 0.15, _jitter(rng, (30, 110, 190)))
    _band(d, w, horizon + h * 0.15, h, _jitter(rng, (236, 210, 150)))
    sx, r = rng.uniform(0.1, 0.9) * w, 0.07 * h
    d.ellipse([sx - r, 0.08 * h, sx + r, 0.08 * h + 2 * r], fill=_jitter(rng, (255, 230, 80)))


def _park(d: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    horizon = h * rng.uniform(0.35, 0.45)
    _band(d, w, 0, horizon, _jitter(rng, (170, 215, 245)))
    _band(d, w, horizon, h, _jitter(rng, (72, 160, 60)))
    tx = rng.uniform(0.1, 0.9) * w
    d.rectangle(
        [tx - 0.03 * w, horizon - 0.1 * h, tx + 0.03 * w, horizon + 0.15 * h],
        fill=_jitter(rng, (110, 70, 35)),
    )
    d.ellipse([tx - 0.14 * w, horizon - 0.32 * h, tx + 0.14 * w, horizon], fill=_jitter(rng, (30, 118, 42)))


def _city(d: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    _band(d, w, 0, h, _jitter(rng, (200, 200, 206)))
    x = 0.0
    while x < w:
        bw, top = rng.uniform(0.12, 0.25) * w, rng.uniform(0.08, 0.4) * h
        grey = int(rng.integers(80, 150))
        d.rectangle([x, top, x + bw, 0.8 * h], fill=(grey, grey, grey + 8))
        for wy in np.arange(top + 0.04 * h, 0.75 * h, 0.08 * h):
            for wx in np.arange(x + 0.03 * w, x + bw - 0.03 * w, 0.06 * w):
                d.rectangle([wx, wy, wx + 0.025 * w, wy + 0.035 * h], fill=(235, 225, 140))
        x += bw + rng.uniform(0.0, 0.03) * w
    _band(d, w, 0.8 * h, h, _jitter(rng, (62, 62, 66)))


def _stadium(d: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    _band(d, w, 0, 0.33 * h, _jitter(rng, (22, 30, 72)))
    _band(d, w, 0.33 * h, 0.55 * h, _jitter(rng, (96, 96, 110)))
    for _ in range(int(0.05 * w * h / 40) + 20):  # the crowd
        cx, cy = rng.uniform(0, w), rng.uniform(0.34, 0.54) * h
        d.point((cx, cy), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    _band(d, w, 0.55 * h, h, _jitter(rng, (40, 140, 52)))
    d.line([0, 0.75 * h, w, 0.75 * h], fill=(245, 245, 245), width=max(1, h // 60))
    d.ellipse([0.4 * w, 0.65 * h, 0.6 * w, 0.85 * h], outline=(245, 245, 245), width=max(1, h // 60))


def _office(d: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    _band(d, w, 0, h, _jitter(rng, (226, 210, 180)))
    wx = rng.uniform(0.05, 0.6) * w
    d.rectangle(
        [wx, 0.08 * h, wx + 0.35 * w, 0.45 * h],
        fill=_jitter(rng, (150, 200, 236)),
        outline=(250, 250, 250),
        width=max(1, h // 50),
    )
    _band(d, w, 0.75 * h, h, _jitter(rng, (122, 80, 40)))


def _mountains(d: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    _band(d, w, 0, h, _jitter(rng, (212, 226, 242)))
    for _ in range(3):
        px, ph = rng.uniform(0, 1) * w, rng.uniform(0.1, 0.3) * h
        base = 0.65 * h
        d.polygon(
            [(px - 0.35 * w, base), (px, ph), (px + 0.35 * w, base)], fill=_jitter(rng, (118, 124, 136))
        )
        d.polygon(
            [(px - 0.08 * w, ph + 0.1 * h), (px, ph), (px + 0.08 * w, ph + 0.1 * h)], fill=(250, 250, 252)
        )
    _band(d, w, 0.65 * h, h, _jitter(rng, (240, 242, 248)))


BACKGROUNDS = {
    "beach": _beach,
    "park": _park,
    "city": _city,
    "stadium": _stadium,
    "office": _office,
    "mountains": _mountains,
}


def _body(d: ImageDraw.ImageDraw, face: Face, height: int) -> None:
    x1, _, x2, y2 = face.box
    s = x2 - x1
    d.rounded_rectangle([x1 + 0.05 * s, y2, x2 - 0.05 * s, height + s], radius=0.25 * s, fill=face.shirt)


def _head(d: ImageDraw.ImageDraw, face: Face) -> None:
    """Hair, head, eyes, eyebrows and mouth, all inside `face.box`."""
    person = CAST[face.person]
    x1, y1, x2, _ = face.box
    s = x2 - x1

    def at(fx0: float, fy0: float, fx1: float, fy1: float) -> list[float]:
        return [x1 + fx0 * s, y1 + fy0 * s, x1 + fx1 * s, y1 + fy1 * s]

    hair, skin, dark = HAIR[person.hair_colour], SKIN[person.skin], (22, 16, 16)
    lw = max(2, round(0.08 * s))
    if person.hair_style == "long":
        d.rounded_rectangle(at(0.12, 0.08, 0.88, 0.98), radius=0.3 * s, fill=hair)
    head = at(0.18, 0.14, 0.82, 0.94) if person.head == "round" else at(0.24, 0.10, 0.76, 0.96)
    d.ellipse(head, fill=skin)
    if person.hair_style in ("short", "long"):
        d.chord(at(0.16, 0.06, 0.84, 0.62), 180, 360, fill=hair)
    elif person.hair_style == "curly":
        for fx in np.linspace(0.22, 0.78, 5):
            d.ellipse(at(fx - 0.12, 0.04, fx + 0.12, 0.28), fill=hair)
    for ex in (0.38, 0.62):
        d.ellipse(at(ex - 0.055, 0.46, ex + 0.055, 0.56), fill=dark)
    brows = {
        "smile": ((0.29, 0.40, 0.45, 0.38), (0.55, 0.38, 0.71, 0.40)),
        "frown": ((0.29, 0.35, 0.46, 0.43), (0.54, 0.43, 0.71, 0.35)),
        "surprise": ((0.29, 0.31, 0.45, 0.27), (0.55, 0.27, 0.71, 0.31)),
    }[face.expression]
    for bx0, by0, bx1, by1 in brows:
        d.line(at(bx0, by0, bx1, by1), fill=dark, width=lw)
    mouth = (90, 18, 24)
    if face.expression == "smile":
        d.arc(at(0.30, 0.54, 0.70, 0.84), 15, 165, fill=mouth, width=lw)
    elif face.expression == "frown":
        d.arc(at(0.30, 0.70, 0.70, 0.96), 195, 345, fill=mouth, width=lw)
    else:
        d.ellipse(at(0.41, 0.64, 0.59, 0.88), fill=mouth)


def render(scene: Scene) -> np.ndarray:
    """Scene -> uint8 (H, W, 3); deterministic in the scene (background details come from `scene.seed`)."""
    image = Image.new("RGB", (scene.width, scene.height))
    draw = ImageDraw.Draw(image)
    BACKGROUNDS[scene.place](draw, scene.width, scene.height, np.random.default_rng(scene.seed))
    for face in scene.faces:
        _body(draw, face, scene.height)
        _head(draw, face)
    return np.asarray(image)


def _feather(height: int, width: int, edge: float) -> np.ndarray:
    """(h, w, 1) alpha ramping from 0 at the border to 1 `edge` pixels inside."""
    ys = np.minimum(np.arange(height), np.arange(height)[::-1])[:, None]
    xs = np.minimum(np.arange(width), np.arange(width)[::-1])[None, :]
    return np.clip((np.minimum(ys, xs) + 0.5) / edge, 0.0, 1.0)[..., None]


def _scale_saturation(region: np.ndarray, factor: float) -> np.ndarray:
    """Scale each pixel's distance from its grey level by `factor` (> 1: oversaturated, < 1: washed out)."""
    grey = region.mean(axis=-1, keepdims=True)
    return grey + factor * (region - grey)


def paste_manipulated(
    original: np.ndarray, edited: np.ndarray, box: Box, kind: str, rng: np.random.Generator
) -> np.ndarray:
    """Paste `edited[box]` into `original` with the trace of a face swap or a face-attribute edit.

    Trace strengths are random, so some manipulations are easy to see and some are not.
    """
    x1, y1, x2, y2 = box
    region = edited[y1:y2, x1:x2].astype(np.float32)  # (h, w, 3)
    if kind == "face_swap":  # the swap model's colour transfer: oversaturated, a slight cast, grain, hard seam
        region = _scale_saturation(region, rng.uniform(1.6, 2.2))
        gain = 1.0 + rng.choice([-1.0, 1.0], size=3) * rng.uniform(0.05, 0.15, size=3)
        grain = rng.normal(0.0, rng.uniform(8, 20), size=region.shape[:2] + (1,))  # the swap model's texture
        region, alpha = region * gain + grain, np.ones((y2 - y1, x2 - x1, 1), np.float32)
    elif kind == "face_attribute":  # GAN-like: smoothed, washed out, feathered into the photo
        blurred = Image.fromarray(region.astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(max(0.6, (x2 - x1) / 60))
        )
        washed_out = _scale_saturation(np.asarray(blurred, np.float32), 1.0 - rng.uniform(0.4, 0.9))
        region = washed_out + rng.uniform(10, 40)
        alpha = _feather(y2 - y1, x2 - x1, edge=max(2.0, (x2 - x1) / 10))
    else:
        raise ValueError(f"unknown image manipulation {kind!r}")
    out = original.astype(np.float32)
    out[y1:y2, x1:x2] = alpha * region + (1.0 - alpha) * out[y1:y2, x1:x2]
    return np.clip(out, 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """Mild sensor noise, so traces are not pixel-exact."""
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)
