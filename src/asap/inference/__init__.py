"""Inference on single image-text pairs: `Predictor` (checkpoint + pairs -> `Verdict`s and attention maps)."""

from asap.inference.predictor import Pair, Prediction, Predictor, box_to_pixels, load_image
from asap.inference.verdict import TYPE_KEYS, Verdict, WordVerdict
from asap.inference.words import PreparedText, prepare_text, word_probabilities

__all__ = [
    "TYPE_KEYS",
    "Pair",
    "Prediction",
    "Predictor",
    "PreparedText",
    "Verdict",
    "WordVerdict",
    "box_to_pixels",
    "load_image",
    "prepare_text",
    "word_probabilities",
]
