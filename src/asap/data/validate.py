"""Validation of DGM4 split files: every problem, with record ids and counts; nothing skipped silently.

Library: `validate_records(records, root, ...) -> ValidationReport` (used by `DGM4DataModule.setup`),
`records_without_aux` for the auxiliary-text caches. Command line: `python src/validate.py ROOT [--deep] ...`.

Image checks: `none`; `exists`; `header` (default: the file opens as an image and gives its size, no decode, which
also checks the box against the image size); `deep` (full decode: catches truncated files; slow on 230K images).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from asap.data.records import (
    FAKE_CLASSES,
    REQUIRED_FIELDS,
    is_image_manipulated,
    is_text_manipulated,
    load_split,
)
from asap.data.text import clean_text

IMAGE_CHECKS = ("none", "exists", "header", "deep")
PROBLEM_KINDS = {
    "not_a_record": "record is not a JSON object",
    "missing_field": "a required field is missing",
    "bad_field_type": "a field has the wrong type",
    "unknown_fake_cls": "fake_cls is not one of the 9 DGM4 kinds",
    "empty_text": "text is empty after cleaning",
    "malformed_box": "fake_image_box is not [] or [x1, y1, x2, y2] with x2-x1 >= 1, y2-y1 >= 1",
    "box_class_mismatch": "a face manipulation without a box, or a box without one",
    "box_outside_image": "fake_image_box reaches outside the image",
    "malformed_text_pos": "fake_text_pos is not a list of non-negative integers",
    "text_pos_beyond_text": "fake_text_pos points past the last word of the text",
    "text_pos_class_mismatch": "manipulated words on a record without a text manipulation",
    "missing_image": "image file not found",
    "unreadable_image": "image file does not open / decode",
}


@dataclass(frozen=True)
class Problem:
    """One problem of one record."""

    index: int  # position in the split file
    record_id: str
    kind: str  # a key of PROBLEM_KINDS
    message: str


@dataclass
class ValidationReport:
    """All problems of one split file."""

    path: Path
    num_records: int
    image_check: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_indices(self) -> list[int]:
        return sorted({p.index for p in self.problems})

    def counts(self) -> Counter[str]:
        return Counter(p.kind for p in self.problems)

    def summary(self, show: int = 10) -> str:
        """Plain text: counts by kind, then the first `show` problems."""
        if self.ok:
            return f"{self.path}: {self.num_records} records, no problems"
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.counts().items()))
        lines = [
            f"{self.path}: {len(self.bad_indices)} of {self.num_records} records have problems "
            f"({len(self.problems)} problems; {kinds})"
        ]
        lines += [f"  #{p.index} (id={p.record_id}) {p.kind}: {p.message}" for p in self.problems[:show]]
        if len(self.problems) > show:
            lines.append(
                f"  ... and {len(self.problems) - show} more (python src/validate.py lists them all)"
            )
        return "\n".join(lines)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _field_problems(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """Schema checks that need no image."""
    missing = [f for f in REQUIRED_FIELDS if f not in rec]
    if missing:
        return [("missing_field", f"missing {', '.join(missing)}")]
    types = {
        "id": _is_int(rec["id"]) or isinstance(rec["id"], str),
        "image": isinstance(rec["image"], str) and bool(rec["image"]),
        "text": isinstance(rec["text"], str),
        "fake_cls": isinstance(rec["fake_cls"], str),
    }
    bad = [f"{k}={rec[k]!r}" for k, good in types.items() if not good]
    if bad:
        return [("bad_field_type", f"wrong type: {', '.join(bad)}")]
    out: list[tuple[str, str]] = []
    if rec["fake_cls"] not in FAKE_CLASSES:
        out.append(("unknown_fake_cls", f"fake_cls {rec['fake_cls']!r}"))
    out += _text_problems(rec)
    out += _box_problems(rec)
    return out


def _text_problems(rec: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    cleaned = clean_text(rec["text"], max_words=sys.maxsize)
    if not cleaned:
        out.append(("empty_text", f"text {rec['text']!r}"))
    pos = rec["fake_text_pos"]
    if not isinstance(pos, list) or not all(_is_int(i) and i >= 0 for i in pos):
        return out + [("malformed_text_pos", f"fake_text_pos {pos!r}")]
    num_words = max(len(rec["text"].split()), len(cleaned.split(" ")) if cleaned else 0)
    beyond = [i for i in pos if i >= num_words]
    if beyond:
        out.append(("text_pos_beyond_text", f"fake_text_pos {beyond} but the text has {num_words} words"))
    if pos and rec["fake_cls"] in FAKE_CLASSES and not is_text_manipulated(rec["fake_cls"]):
        out.append(("text_pos_class_mismatch", f"fake_cls {rec['fake_cls']!r} with fake_text_pos {pos}"))
    return out


def _box_problems(rec: dict[str, Any]) -> list[tuple[str, str]]:
    box = rec["fake_image_box"]
    if not isinstance(box, list) or len(box) not in (0, 4) or not all(_is_number(v) for v in box):
        return [("malformed_box", f"fake_image_box {box!r}")]
    if box and (box[2] - box[0] < 1 or box[3] - box[1] < 1):
        return [("malformed_box", f"fake_image_box {box} has x2-x1 or y2-y1 below 1 pixel")]
    out: list[tuple[str, str]] = []
    if box and (box[0] < 0 or box[1] < 0):
        out.append(("box_outside_image", f"fake_image_box {box} has a negative coordinate"))
    if rec["fake_cls"] in FAKE_CLASSES and bool(box) != is_image_manipulated(rec["fake_cls"]):
        what = "no box" if not box else f"box {box}"
        out.append(("box_class_mismatch", f"fake_cls {rec['fake_cls']!r} with {what}"))
    return out


def image_size(path: Path, deep: bool = False) -> tuple[int, int]:
    """(W, H) from the header; `deep` decodes the whole image. Raises OSError / UnidentifiedImageError."""
    with Image.open(path) as im:
        if deep:
            im.load()
        return im.size


def _image_problems(rec: dict[str, Any], root: Path, image_check: str) -> list[tuple[str, str]]:
    if image_check == "none":
        return []
    path = root / rec["image"]
    if not path.is_file():
        return [("missing_image", f"{path} not found")]
    if image_check == "exists":
        return []
    try:
        width, height = image_size(path, deep=image_check == "deep")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        return [("unreadable_image", f"{path}: {err}")]
    box = rec["fake_image_box"]
    if isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box):
        if box[2] > width or box[3] > height:
            return [("box_outside_image", f"fake_image_box {box} outside the {width}x{height} image {path}")]
    return []


def check_record(record: Any, index: int, root: str | Path, image_check: str = "header") -> list[Problem]:
    """Every problem of one record (schema, labels, and its image as `image_check` says)."""
    if image_check not in IMAGE_CHECKS:
        raise ValueError(f"image_check must be one of {IMAGE_CHECKS}, got {image_check!r}")
    if not isinstance(record, dict):
        return [Problem(index, "?", "not_a_record", f"got {type(record).__name__}: {str(record)[:60]}")]
    found = _field_problems(record)
    if not any(kind in ("missing_field", "bad_field_type") for kind, _ in found):
        found += _image_problems(record, Path(root), image_check)
    rid = str(record.get("id", "?"))
    return [Problem(index, rid, kind, msg) for kind, msg in found]


def validate_records(
    records: Sequence[Any],
    root: str | Path,
    path: str | Path = "<records>",
    image_check: str = "header",
    workers: int = 8,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> ValidationReport:
    """Check all records (images read by `workers` threads); `progress(iterable, total)` may wrap the loop."""

    def check(item: tuple[int, Any]) -> list[Problem]:
        return check_record(item[1], item[0], root, image_check)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results: Iterable[list[Problem]] = pool.map(check, enumerate(records), chunksize=64)
        if progress is not None:
            results = progress(results, len(records))
        problems = [p for found in results for p in found]
    return ValidationReport(
        path=Path(path), num_records=len(records), image_check=image_check, problems=problems
    )


def validate_split_file(
    path: str | Path, root: str | Path, image_check: str = "header", workers: int = 8
) -> ValidationReport:
    """Load and check one split file (missing / non-list files raise `DGM4DataError`)."""
    return validate_records(load_split(path), root, path=path, image_check=image_check, workers=workers)


def records_without_aux(records: Sequence[Any], cache_path: str | Path) -> list[int]:
    """Positions of the records whose (image, text) key has no text in the aux-text cache at `cache_path`."""
    from asap.data.aux_cache import AuxTextCache

    cache = AuxTextCache(cache_path)
    return [
        i
        for i, r in enumerate(records)
        if isinstance(r, dict) and (r.get("image"), r.get("text")) not in cache
    ]
