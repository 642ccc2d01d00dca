"""DGM4 records: the split-file schema, the 9 `fake_cls` kinds and the protocol's label/box conversions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from asap.errors import DGM4DataError

# multi-label order [FS, FA, TS, TA] (contracts.md)
MANIPULATIONS = ("face_swap", "face_attribute", "text_swap", "text_attribute")
FAKE_CLASSES = (
    "orig",
    "face_swap",
    "face_attribute",
    "text_swap",
    "text_attribute",
    "face_swap&text_swap",
    "face_swap&text_attribute",
    "face_attribute&text_swap",
    "face_attribute&text_attribute",
)
REQUIRED_FIELDS = ("id", "image", "text", "fake_cls", "fake_image_box", "fake_text_pos")
SPLITS = ("train", "val", "test")


def record_ref(record: Any, index: int) -> str:
    """`#index (id=...)`: how error messages name a record."""
    rid = record.get("id", "?") if isinstance(record, dict) else "?"
    return f"#{index} (id={rid})"


def multilabel(fake_cls: str) -> list[int]:
    """`fake_cls` -> [FS, FA, TS, TA]; mixed kinds are the OR of their `&`-joined parts."""
    if fake_cls not in FAKE_CLASSES:
        raise DGM4DataError(f"unknown fake_cls {fake_cls!r}; expected one of {', '.join(FAKE_CLASSES)}")
    parts = set(fake_cls.split("&"))
    return [int(m in parts) for m in MANIPULATIONS]


def fake_cls_of(labels: list[int] | tuple[int, ...]) -> str:
    """[FS, FA, TS, TA] -> its `fake_cls` (the inverse of `multilabel`; each of the 9 kinds has its own vector)."""
    key = tuple(int(v) for v in labels)
    for kind in FAKE_CLASSES:
        if tuple(multilabel(kind)) == key:
            return kind
    raise DGM4DataError(f"multi-label {list(key)} [FS, FA, TS, TA] is none of the 9 DGM4 kinds")


def is_image_manipulated(fake_cls: str) -> bool:
    fs, fa, _, _ = multilabel(fake_cls)
    return bool(fs or fa)


def is_text_manipulated(fake_cls: str) -> bool:
    _, _, ts, ta = multilabel(fake_cls)
    return bool(ts or ta)


def protocol_box(box: list[float]) -> tuple[int, int, int, int] | None:
    """`[x1, y1, x2, y2]` -> the protocol's integer `(x, y, w, h)`; `[]` -> None (no box)."""
    if len(box) == 0:
        return None
    x1, y1, x2, y2 = box
    return int(x1), int(y1), int(x2 - x1), int(y2 - y1)


def box_fits(xywh: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether a protocol box `(x, y, w, h)` is at least 1x1 and lies inside a `width` x `height` image."""
    x, y, w, h = xywh
    return x >= 0 and y >= 0 and w >= 1 and h >= 1 and x + w <= width and y + h <= height


def load_split(path: str | os.PathLike[str]) -> list[Any]:
    """Read one split file (a JSON list of records); a clear error when it is missing or not a list."""
    path = Path(path)
    if not path.is_file():
        raise DGM4DataError(f"split file not found: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            records = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DGM4DataError(f"split file {path} is not valid JSON: {err}") from err
    if not isinstance(records, list):
        raise DGM4DataError(
            f"split file {path} must hold a JSON list of records, got {type(records).__name__}"
        )
    return records
