"""DGM4 data: records, text cleaning + token labels, transforms, patch labels, aux texts, validation, the
synthetic generator, Dataset/collate and `DGM4DataModule`.

Exports are imported lazily, so `python -m asap.data.synthetic` (and src/validate.py) start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DGM4Collator": "asap.data.collate",
    "DGM4DataModule": "asap.data.datamodule",
    "DGM4Dataset": "asap.data.dataset",
    "FAKE_CLASSES": "asap.data.records",
    "MANIPULATIONS": "asap.data.records",
    "generate_synthetic_dgm4": "asap.data.synthetic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'asap.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
