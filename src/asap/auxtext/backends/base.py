"""What every generation backend offers the runner, and the helpers they share."""

from __future__ import annotations

import base64
import io
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from asap.auxtext.prompts import PromptSpec

Key = tuple[str, str]


class ImageReadError(OSError):
    """An image that cannot be opened or decoded."""


@dataclass(frozen=True)
class GenContext:
    """What the runner tells a backend: the task, its prompt, the token budget and the data root."""

    prompt: PromptSpec
    max_new_tokens: int
    data_root: Path

    @property
    def task(self) -> str:
        return self.prompt.task


@dataclass(frozen=True)
class GenRequest:
    """One generation: the rendered user prompt, the absolute image path (captions) and the keys it fills."""

    uid: str
    prompt: str
    image_path: Path | None = None
    keys: tuple[Key, ...] = ()


@dataclass
class GenResult:
    """The output text, or the reason it failed; ``tokens`` generated (for the throughput).

    ``extra["by_key"]`` may map some keys to their own output (the oracle's per-record ground truth).
    """

    output: str | None = None
    error: str | None = None
    tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str | BaseException) -> GenResult:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(output=None, error=text or "unknown error")


class Backend(ABC):
    """A model that turns requests into texts. Models load lazily (a run with nothing to do loads nothing)."""

    #: how many requests the runner hands over at once
    batch_size: int = 1

    def __init__(self, context: GenContext) -> None:
        self.context = context

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The name stored with every cache line; two runs mix only when it is equal."""

    @property
    def prompt_hash(self) -> str:
        return self.context.prompt.hash

    def settings(self) -> dict[str, Any]:
        """Generation settings stored with every cache line (not the batch size or the shard)."""
        return {"task": self.context.task, "max_new_tokens": self.context.max_new_tokens}

    def load(self) -> None:  # noqa: B027 - optional hook: most backends load lazily or not at all
        """Load the model (idempotent); called once there is work. Raises `BackendUnavailable` when it can't."""

    @abstractmethod
    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        """One result per request, in order; may raise for the whole batch (the runner then goes one by one)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model or the connections."""


def load_image(path: Path) -> Image.Image:
    """An RGB image, fully decoded; `ImageReadError` naming the file otherwise."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise ImageReadError(f"image not found: {path}") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err


def image_data_url(path: Path) -> str:
    """The image as a base64 ``data:`` URL; the file is decoded first so a broken image fails here, not remotely."""
    load_image(path)
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        mime = Image.MIME.get(img.format or "", "image/jpeg")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
