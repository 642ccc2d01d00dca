"""`DGM4Dataset`: one validated split -> per-sample tensors of the protocol (batched by `DGM4Collator`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from transformers import PreTrainedTokenizerBase

from asap.data.image_cache import ImageCache
from asap.data.patches import patch_labels
from asap.data.records import box_fits, multilabel, protocol_box, record_ref
from asap.data.text import clean_text, encode_aux, encode_text
from asap.errors import DGM4DataError

Entry = tuple[int, dict[str, Any]]  # (position in the split file, record)


class DGM4Dataset(Dataset):
    """Validated records of one split file; `__getitem__` loads, transforms and labels one sample."""

    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        root: str | Path,
        split_path: str | Path,
        tokenizer: PreTrainedTokenizerBase,
        transform: v2.Transform,
        image_size: int,
        patch_size: int,
        max_words: int = 50,
        max_text_length: int = 128,
        max_aux_length: int = 128,
        aux_final_sep: bool = True,
        captions: Sequence[str] | None = None,
        explanations: Sequence[str] | None = None,
        image_cache: ImageCache | None = None,
    ) -> None:
        self.entries = list(entries)
        self.root = Path(root)
        self.split_path = Path(split_path)
        self.tokenizer = tokenizer
        self.transform = transform
        self.image_size = image_size
        self.patch_size = patch_size
        self.max_words = max_words
        self.max_text_length = max_text_length
        self.max_aux_length = max_aux_length
        self.aux_final_sep = aux_final_sep
        self.image_cache = image_cache  # images pre-resized to S x S on first use (asap.data.image_cache)
        self.texts = [clean_text(rec["text"], max_words) for _, rec in self.entries]
        self.captions = self._clean_aux(captions, "caption")
        self.explanations = self._clean_aux(explanations, "explanation")

    def _clean_aux(self, texts: Sequence[str] | None, kind: str) -> list[str] | None:
        if texts is None:
            return None
        if len(texts) != len(self.entries):
            raise ValueError(f"{len(texts)} {kind}s for {len(self.entries)} records")
        cleaned = [clean_text(t, self.max_words) for t in texts]
        for (index, rec), text in zip(self.entries, cleaned, strict=True):
            if not text:
                raise DGM4DataError(
                    f"{self.split_path}: record {record_ref(rec, index)}: its {kind} is empty after cleaning"
                )
        return cleaned

    def __len__(self) -> int:
        return len(self.entries)

    def _error(self, index: int, rec: dict[str, Any], msg: str) -> DGM4DataError:
        return DGM4DataError(f"{self.split_path}: record {record_ref(rec, index)}: {msg}")

    def _load_image(self, index: int, rec: dict[str, Any]) -> tuple[Image.Image, tuple[int, int]]:
        """The RGB image (already S x S when served by the image cache) and its original (W, H)."""
        path = self.root / rec["image"]
        try:
            if self.image_cache is not None:
                return self.image_cache.load(path)
            with Image.open(path) as im:
                image = im.convert("RGB")
            return image, image.size
        except FileNotFoundError as err:
            raise self._error(index, rec, f"image not found: {path}") from err
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise self._error(index, rec, f"cannot read image {path}: {err}") from err

    def _boxes(self, index: int, rec: dict[str, Any], width: int, height: int) -> tv_tensors.BoundingBoxes:
        """The protocol's integer (x, y, w, h) box in original pixels, (0, 4) when there is none."""
        xywh = protocol_box(rec["fake_image_box"])
        if xywh is not None and not box_fits(xywh, width, height):
            raise self._error(
                index, rec, f"fake_image_box {rec['fake_image_box']} does not fit the {width}x{height} image"
            )
        data = torch.tensor([xywh] if xywh else [], dtype=torch.float64).reshape(-1, 4)
        return tv_tensors.BoundingBoxes(data, format="XYWH", canvas_size=(height, width))

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, rec = self.entries[i]
        image, (width, height) = self._load_image(index, rec)
        boxes = self._boxes(index, rec, width, height)
        if image.size != (width, height):  # pre-resized by the image cache: the box follows the resize
            boxes = F.resize(boxes, [self.image_size, self.image_size])
        image_t, boxes = self.transform(image, boxes)  # (3, S, S), (0|1, 4)
        size = self.image_size
        if len(boxes):
            x, y, w, h = boxes[0].tolist()  # after flip + resize, in S x S pixels
            box = torch.tensor(
                [(x + w / 2) / size, (y + h / 2) / size, w / size, h / size], dtype=torch.float32
            )
            patches = patch_labels((x, y, w, h), size, self.patch_size)
        else:
            box = torch.zeros(4, dtype=torch.float32)
            patches = patch_labels(None, size, self.patch_size)
        input_ids, token_labels = encode_text(
            self.tokenizer, self.texts[i], rec["fake_text_pos"], self.max_words, self.max_text_length
        )
        sample = {
            "image": image_t.as_subclass(torch.Tensor),
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "token_labels": torch.tensor(token_labels, dtype=torch.long),
            "binary_label": int(rec["fake_cls"] != "orig"),
            "multilabel": torch.tensor(multilabel(rec["fake_cls"]), dtype=torch.float32),
            "box": box,
            "has_box": bool(len(boxes)),
            "patch_labels": patches,
            "index": index,
            "id": str(rec["id"]),
            "image_path": rec["image"],
            "text": self.texts[i],
            "orig_size": (width, height),
        }
        if self.captions is not None:
            sample["caption_ids"] = torch.tensor(
                encode_aux(self.tokenizer, self.captions[i], self.max_aux_length, self.aux_final_sep)
            )
        if self.explanations is not None:
            ids = encode_aux(self.tokenizer, self.explanations[i], self.max_aux_length, self.aux_final_sep)
            sample["explanation_ids"] = torch.tensor(ids)
        return sample
