"""`Predictor`: a checkpoint + image-text pairs -> verdicts, with the data layer's own preprocessing.

Inputs go through exactly what evaluation uses: `clean_text` + `encode_text` (asap.data.text), the eval transform
(resize to the model's image size, CLIP normalisation; asap.data.transforms) and `DGM4Collator` (padding, masks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision.ops import box_convert
from transformers import PreTrainedTokenizerBase

from asap.data.collate import DGM4Collator
from asap.data.patches import patch_grid, patch_labels
from asap.data.transforms import build_transform
from asap.errors import UserError
from asap.inference.loading import load_inference_tokenizer, load_module, resolve_device
from asap.inference.verdict import TYPE_KEYS, Verdict, WordVerdict
from asap.inference.words import PreparedText, prepare_text, word_probabilities

PROTOCOL_MAX_WORDS = 50  # the protocol's word cut (data.max_words)
MAX_LISTED_PROBLEMS = 20


@dataclass
class Pair:
    """One input: an image (path or PIL image) and its text; `name` says how messages refer to it."""

    image: str | os.PathLike[str] | Image.Image
    text: str
    name: str = ""


@dataclass
class Prediction:
    verdict: Verdict
    image: Image.Image  # the input image (RGB), for figures
    attention: np.ndarray  # (G, G) text-to-image attention on the patch grid (Figure 5), sums to <= 1
    piece_probabilities: list[float]  # P(manipulated) per word-piece the model read (positions 1..L-1)


@dataclass
class _Prepared:
    sample: dict[str, Any]
    text: PreparedText
    image: Image.Image
    pair: Pair


def load_image(path: str | os.PathLike[str], where: str) -> Image.Image:
    """An RGB PIL image (as the data set reads it); UserError naming `where` when missing or unreadable."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as err:
        raise UserError(f"{where}: image not found: {path}") from err
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{where}: cannot read image {path}: {err}") from err


def box_to_pixels(box_cxcywh: Sequence[float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Normalised (cx, cy, w, h) -> (x1, y1, x2, y2) in pixels of a (W, H) image, clipped to it.

    The eval transform resizes without keeping the aspect ratio, so normalised coordinates scale by W and H.
    """
    width, height = size
    xyxy = box_convert(torch.tensor([list(box_cxcywh)], dtype=torch.float64), "cxcywh", "xyxy")[0]  # (4,)
    scale = torch.tensor([width, height, width, height], dtype=torch.float64)
    xyxy = torch.minimum(torch.clamp(xyxy * scale, min=0), scale)
    return tuple(float(v) for v in xyxy)  # type: ignore[return-value]


def attention_grid(attention: Tensor, valid: Tensor, selected: Tensor, grid: int) -> np.ndarray:
    """Text-to-image attention (L-1, N) averaged over the `selected` tokens (all `valid` ones when none)."""
    rows = selected & valid if bool((selected & valid).any()) else valid  # (L-1,)
    return attention[rows].float().mean(dim=0).reshape(grid, grid).cpu().numpy()  # (G, G), row-major patches


class Predictor:
    """Runs a trained ASAP model on image-text pairs (see `predict`)."""

    def __init__(
        self,
        module: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        threshold: float = 0.5,
        max_words: int = PROTOCOL_MAX_WORDS,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise UserError(f"threshold must be in (0, 1), got {threshold}")
        self.module = module.eval()
        self.model_cfg = module.config.model
        self.tokenizer = tokenizer
        self.threshold = threshold
        self.max_words = max_words
        self.transform = build_transform(self.model_cfg.image_size, train=False)
        self.collate = DGM4Collator(tokenizer.pad_token_id)
        self.grid = patch_grid(self.model_cfg.image_size, self.model_cfg.patch_size)

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | os.PathLike[str],
        device: str = "cpu",
        tokenizer: str | None = None,
        threshold: float = 0.5,
        max_words: int = PROTOCOL_MAX_WORDS,
    ) -> Predictor:
        """Load safely (weights_only, rebuilt from config classes); `tokenizer` overrides the checkpoint's."""
        module = load_module(ckpt_path, resolve_device(device))
        tok = load_inference_tokenizer(module.config.model.tokenizer, tokenizer)
        return cls(module, tok, threshold=threshold, max_words=max_words)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    # ------------------------------------------------------------------ inputs
    def prepare(self, pair: Pair, index: int = 0) -> _Prepared:
        """One pair -> a sample dict of `DGM4Dataset`'s layout (labels are unused placeholders)."""
        where = pair.name or f"pair #{index}"
        if not isinstance(pair.text, str):
            raise UserError(f"{where}: text must be a string, got {type(pair.text).__name__}")
        text = prepare_text(
            self.tokenizer, pair.text, self.max_words, self.model_cfg.max_text_len, where=where
        )
        if isinstance(pair.image, Image.Image):
            image = pair.image.convert("RGB")
        else:
            image = load_image(pair.image, where)
        image_t = self.transform(image)  # (3, S, S), CLIP-normalised
        n_pieces = len(text.input_ids) - 1
        sample = {
            "image": image_t.as_subclass(torch.Tensor),
            "input_ids": torch.tensor(text.input_ids, dtype=torch.long),
            "token_labels": torch.zeros(n_pieces, dtype=torch.long),
            "binary_label": 0,
            "multilabel": torch.zeros(4),
            "box": torch.zeros(4),
            "has_box": False,
            "patch_labels": patch_labels(None, self.model_cfg.image_size, self.model_cfg.patch_size),
            "index": index,
            "id": str(index),
            "image_path": str(pair.image) if not isinstance(pair.image, Image.Image) else "<image>",
            "text": text.model_text,
            "orig_size": image.size,
        }
        return _Prepared(sample, text, image, pair)

    def prepare_all(self, pairs: Sequence[Pair]) -> list[_Prepared]:
        """Prepare every pair; all problems are reported together in one UserError (never skipped)."""
        prepared, problems = [], []
        for i, pair in enumerate(pairs):
            try:
                prepared.append(self.prepare(pair, i))
            except UserError as err:
                problems.append(str(err))
        if problems:
            shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
            more = (
                f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more"
                if len(problems) > MAX_LISTED_PROBLEMS
                else ""
            )
            raise UserError(f"{len(problems)} of {len(pairs)} pair(s) cannot be read:\n  {shown}{more}")
        return prepared

    # ------------------------------------------------------------------ running
    @torch.no_grad()
    def predict(self, pairs: Sequence[Pair], batch_size: int = 16) -> list[Prediction]:
        """Verdicts (and attention maps) for `pairs`, in order."""
        if not pairs:
            raise UserError("no image-text pair to predict")
        prepared = self.prepare_all(pairs)
        results: list[Prediction] = []
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            results += self._run(chunk)
        return results

    def predict_one(self, image: str | os.PathLike[str] | Image.Image, text: str) -> Prediction:
        return self.predict([Pair(image, text)])[0]

    def _run(self, chunk: list[_Prepared]) -> list[Prediction]:
        batch = self.collate([p.sample for p in chunk])
        inputs = {k: batch[k].to(self.device) for k in ("image", "input_ids", "attention_mask")}
        out = self.module.model(inputs, compute_losses=False, return_attention=True)
        fake = out.binary_logits.float().softmax(dim=-1)[:, 1]  # (B,)
        types = out.multilabel_logits.float().sigmoid()  # (B, 4)
        pieces = out.token_logits.float().softmax(dim=-1)[..., 1]  # (B, L-1)
        valid = batch["attention_mask"][:, 1:].bool().to(self.device)  # (B, L-1)
        assert out.text_to_image_attention is not None  # asked for with return_attention
        results = []
        for b, item in enumerate(chunk):
            n = len(item.text.piece_words)
            piece_probs = pieces[b, :n].tolist()
            selected = pieces[b] > self.threshold  # (L-1,)
            attention = attention_grid(out.text_to_image_attention[b], valid[b], selected, self.grid)
            verdict = self._verdict(
                item, float(fake[b]), types[b].tolist(), out.box_pred[b].tolist(), piece_probs
            )
            verdict.attention_over = "manipulated words" if bool((selected & valid[b]).any()) else "all words"
            results.append(Prediction(verdict, item.image, attention, piece_probs))
        return results

    def _verdict(
        self,
        item: _Prepared,
        fake: float,
        types: list[float],
        box: list[float],
        piece_probs: list[float],
    ) -> Verdict:
        t = self.threshold
        probs = word_probabilities(item.text, piece_probs)
        words = [
            WordVerdict(w, p, p is not None and p > t)
            for w, p in zip(item.text.user_words, probs, strict=True)
        ]
        pair = item.pair
        return Verdict(
            image=str(pair.image) if not isinstance(pair.image, Image.Image) else (pair.name or "<image>"),
            text=pair.text,
            image_size=item.image.size,
            fake_probability=fake,
            is_fake=fake > t,
            type_probabilities=dict(zip(TYPE_KEYS, types, strict=True)),
            predicted_types=[k for k, p in zip(TYPE_KEYS, types, strict=True) if p > t],
            box=box_to_pixels(box, item.image.size),
            box_normalized=tuple(box),  # type: ignore[arg-type]
            words=words,
            manipulated_words=[w.word for w in words if w.manipulated],
            model_text=item.text.model_text,
            truncated=item.text.truncated,
            attention_over="all words",
            threshold=t,
            warnings=list(item.text.warnings),
        )
