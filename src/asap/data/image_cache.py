"""Decoded images pre-resized to the model's S x S, kept on disk after first use (`data.image_cache: DIR`).

The protocol resizes every image to S x S (bicubic, aspect ratio not kept) before anything random happens to it
except the horizontal flip, and PIL's bicubic resize commutes exactly with a horizontal flip (checked bit for bit
in tests/test_equivalence.py). So serving the cached S x S image to the unchanged transform (flip -> resize, a no-op
at S x S -> RandAugment -> normalise) gives the same tensors for the same random draws; the box is resized to the
S x S canvas first. An entry is keyed by the source's resolved path, size and modification time, under a folder
per image size: a changed source file or another image size misses the cache and is decoded again. Old entries are
never deleted (remove the folder to reclaim the space). Each entry is an 8-byte header (original W, H as uint32)
followed by the raw S x S x 3 uint8 pixels (S=256: 192 KiB per image, about 44 GiB for DGM4's 230K images).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

FORMAT_VERSION = 1
HEADER = np.dtype("<u4")  # original width, height


def resize_image(image: Image.Image, image_size: int) -> Image.Image:
    """The protocol's resize (asap.data.transforms): bicubic, antialiased, to image_size x image_size."""
    return F.resize(
        image, [image_size, image_size], interpolation=v2.InterpolationMode.BICUBIC, antialias=True
    )


class ImageCache:
    """`load(path)` -> (RGB image resized to S x S, original (W, H)); decodes and stores on a miss."""

    def __init__(self, directory: str | os.PathLike[str], image_size: int) -> None:
        self.image_size = image_size
        self.directory = Path(directory) / f"{image_size}px-v{FORMAT_VERSION}"
        self.hits = 0
        self.misses = 0

    def entry(self, source: Path) -> Path:
        """Cache file of `source` as it is now (FileNotFoundError when the source does not exist)."""
        stat = source.stat()
        key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.rgb"

    def load(self, source: str | os.PathLike[str]) -> tuple[Image.Image, tuple[int, int]]:
        source = Path(source)
        entry = self.entry(source)
        try:
            data = entry.read_bytes()
        except FileNotFoundError:
            return self._fill(source, entry)
        S = self.image_size
        width, height = np.frombuffer(data, dtype=HEADER, count=2).tolist()
        pixels = np.frombuffer(data, dtype=np.uint8, offset=2 * HEADER.itemsize)
        if pixels.size != S * S * 3:  # a truncated entry: decode again
            return self._fill(source, entry)
        self.hits += 1
        return Image.fromarray(pixels.reshape(S, S, 3)), (width, height)

    def _fill(self, source: Path, entry: Path) -> tuple[Image.Image, tuple[int, int]]:
        self.misses += 1
        with Image.open(source) as im:
            image = im.convert("RGB")
        resized = resize_image(image, self.image_size)
        header = np.array(image.size, dtype=HEADER).tobytes()
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=entry.parent, suffix=".tmp", delete=False) as tmp:
            tmp.write(header + np.asarray(resized, dtype=np.uint8).tobytes())
        os.replace(tmp.name, entry)  # atomic: concurrent workers never read a partial entry
        return resized, image.size
