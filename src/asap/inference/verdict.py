"""The verdict on one image-text pair, as written to JSON (`Verdict.to_dict`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TYPE_KEYS = (
    "face_swap",
    "face_attribute",
    "text_swap",
    "text_attribute",
)  # multi-label order [FS, FA, TS, TA]


@dataclass
class WordVerdict:
    word: str  # as the user wrote it
    probability: float | None  # max over its word-pieces; None: not read (punctuation only, or truncated)
    manipulated: bool


@dataclass
class Verdict:
    """Model outputs of one pair, in the user's terms (probabilities, pixels, words)."""

    image: str
    text: str
    image_size: tuple[int, int]  # (W, H) of the input image
    fake_probability: float  # softmax of the binary head, "fake" class
    is_fake: bool
    type_probabilities: dict[str, float]  # sigmoid of the multi-label head, TYPE_KEYS
    predicted_types: list[str]  # the types over the threshold
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the input image
    box_normalized: tuple[float, float, float, float]  # cx, cy, w, h in [0, 1], as the model predicts it
    words: list[WordVerdict]
    manipulated_words: list[str]
    model_text: str  # the cleaned text the model read
    truncated: bool
    attention_over: str  # "manipulated words" or "all words": what the attention map averages
    threshold: float
    warnings: list[str] = field(default_factory=list)
    figure: str | None = None  # path of the PNG, when written

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats rounded to 6 digits)."""
        return _rounded(asdict(self))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value
