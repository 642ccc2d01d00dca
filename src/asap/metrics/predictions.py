"""Prediction files: one `.npz` of every sample's outputs and labels, enough to re-score a run offline.

Arrays (N samples, L token positions without [CLS]):
    binary_logits     float (N, 2)      [real, fake]
    multilabel_logits float (N, 4)      [FS, FA, TS, TA]
    box_pred          float (N, 4)      cx, cy, w, h in [0, 1]
    token_logits      float (N, L, 2)
    binary_label      int   (N,)        1 = fake
    multilabel_label  int   (N, 4)      0/1 (float 0./1. accepted)
    box_target        float (N, 4)      cx, cy, w, h in [0, 1]; zeros when there is no box
    token_labels      int   (N, L)      1 manipulated, 0 real, -100 padding
    ids               int or str (N,)   record ids (not unique in DGM4)
Optional, checked when present (files written before they existed still load; `asap.metrics.breakdown` slices by
them, deriving `fake_cls` from `multilabel_label` when it is absent):
    index             int (N,)          the record's position in its split file (unique)
    fake_cls          str (N,)          the record's `fake_cls`, one of the 9 DGM4 kinds
    image             str (N,)          the record's `image` path (e.g. DGM4/manipulation/simswap/...)
Other arrays may ride along; they are kept, not checked. Labels are stored as int8.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asap.errors import PredictionFileError
from asap.labels import IGNORE_INDEX


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[str | int, ...]  # "N" / "L": shared sizes, ints: fixed sizes
    kind: str  # "float", "label", "ids", "index" (integer), "text" (strings)
    values: tuple[int, ...] | None = None  # allowed label values
    range: tuple[float, float] | None = None  # allowed closed range of a float array


ARRAY_SPECS: dict[str, ArraySpec] = {
    "binary_logits": ArraySpec(("N", 2), "float"),
    "multilabel_logits": ArraySpec(("N", 4), "float"),
    "box_pred": ArraySpec(("N", 4), "float"),
    "token_logits": ArraySpec(("N", "L", 2), "float"),
    "binary_label": ArraySpec(("N",), "label", values=(0, 1)),
    "multilabel_label": ArraySpec(("N", 4), "label", values=(0, 1)),
    "box_target": ArraySpec(("N", 4), "float", range=(0.0, 1.0)),
    "token_labels": ArraySpec(("N", "L"), "label", values=(IGNORE_INDEX, 0, 1)),
    "ids": ArraySpec(("N",), "ids"),
}
REQUIRED_ARRAYS = tuple(ARRAY_SPECS)
OPTIONAL_ARRAY_SPECS: dict[str, ArraySpec] = {  # per-row record fields, for slicing (asap.metrics.breakdown)
    "index": ArraySpec(("N",), "index"),
    "fake_cls": ArraySpec(("N",), "text"),
    "image": ArraySpec(("N",), "text"),
}
TOKEN_PAD = {"token_logits": 0.0, "token_labels": IGNORE_INDEX}  # padding of the token arrays to a common L


# ---------------------------------------------------------------------------------------------- validation
def validate_predictions(arrays: Mapping[str, np.ndarray], source: str = "predictions") -> None:
    """Raise PredictionFileError (naming `source` and the array) unless `arrays` can be scored."""
    missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise PredictionFileError(f"{source}: missing array(s) {', '.join(missing)}")
    sizes: dict[str, int] = {}
    for name, spec in ARRAY_SPECS.items():
        _check_array(source, name, np.asarray(arrays[name]), spec, sizes)
    for name, spec in OPTIONAL_ARRAY_SPECS.items():
        if name in arrays:
            _check_array(source, name, np.asarray(arrays[name]), spec, sizes)
    if sizes["N"] == 0:
        raise PredictionFileError(f"{source}: holds no sample (N = 0)")


def _check_array(source: str, name: str, x: np.ndarray, spec: ArraySpec, sizes: dict[str, int]) -> None:
    where = f"{source}: array '{name}'"
    want = "(" + ", ".join(map(str, spec.shape)) + ("," if len(spec.shape) == 1 else "") + ")"
    if x.ndim != len(spec.shape):
        raise PredictionFileError(f"{where} has shape {x.shape}, expected {want}")
    for dim, (s, d) in enumerate(zip(spec.shape, x.shape, strict=True)):
        if isinstance(s, int) and d != s:
            raise PredictionFileError(f"{where} has shape {x.shape}, expected {want}")
        if isinstance(s, str) and sizes.setdefault(s, d) != d:
            what = "samples" if s == "N" else "token positions"
            raise PredictionFileError(f"{where} has {d} {what} (dim {dim}), other arrays have {sizes[s]}")
    _check_dtype(where, x, spec)


def _check_dtype(where: str, x: np.ndarray, spec: ArraySpec) -> None:
    if spec.kind == "ids":
        if x.dtype.kind not in "iuUS":
            raise PredictionFileError(f"{where} has dtype {x.dtype}, expected integer or string ids")
        return
    if spec.kind == "index":
        if x.dtype.kind not in "iuf":
            raise PredictionFileError(f"{where} has dtype {x.dtype}, expected numeric record indices")
        return
    if spec.kind == "text":
        if x.dtype.kind not in "US":
            raise PredictionFileError(f"{where} has dtype {x.dtype}, expected strings")
        return
    if spec.kind == "float":
        if x.dtype.kind != "f":
            raise PredictionFileError(f"{where} has dtype {x.dtype}, expected a float dtype")
        if not np.isfinite(x).all():
            raise PredictionFileError(f"{where} holds NaN or inf values")
        if spec.range is not None and x.size and (x.min() < spec.range[0] or x.max() > spec.range[1]):
            raise PredictionFileError(f"{where} has values outside [{spec.range[0]}, {spec.range[1]}]")
        return
    if x.dtype.kind not in "biuf":
        raise PredictionFileError(f"{where} has dtype {x.dtype}, expected integer labels")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise PredictionFileError(f"{where} holds NaN or inf values")
    bad = ~np.isin(x, spec.values)
    if bad.any():
        raise PredictionFileError(
            f"{where} holds {x[bad].flat[0].item()!r}; allowed values are {list(spec.values)}"
        )


# ---------------------------------------------------------------------------------------------- I/O
def _to_numpy(value: Any) -> np.ndarray:
    """A tensor, list or array -> a NumPy array (ids given as Python strings become a str array)."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    x = np.asarray(value)
    return x.astype(str) if x.dtype == object else x


def save_predictions(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """Validate and write `arrays` (see the module docstring) to `path` (.npz, compressed, written atomically)."""
    path = Path(path)
    out = {name: _to_numpy(value) for name, value in arrays.items()}
    validate_predictions(out, source=f"save_predictions({path.name})")
    for name, spec in ARRAY_SPECS.items():
        if spec.kind == "label":
            out[name] = out[name].astype(np.int8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:  # a file object: NumPy appends no ".npz" to the name
        np.savez_compressed(f, **out)
    os.replace(tmp, path)
    return path


def load_predictions(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read and validate a prediction file; PredictionFileError (one line, naming the problem) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise PredictionFileError(f"{path}: not a .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise PredictionFileError(
            f"{path}: not a readable .npz prediction file ({type(err).__name__}: {err})"
        ) from err
    validate_predictions(arrays, source=str(path))
    return arrays


# ---------------------------------------------------------------------------------------------- batches
def concat_predictions(batches: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-batch arrays -> one array per name; token arrays padded to the largest L (0 logits, -100 labels)."""
    batches = [{name: _to_numpy(v) for name, v in b.items()} for b in batches]
    if not batches:
        return {}
    out = {}
    for name in batches[0]:
        parts = [b[name] for b in batches]
        if name in TOKEN_PAD:
            width = max(p.shape[1] for p in parts)
            parts = [_pad_dim1(p, width, TOKEN_PAD[name]) for p in parts]
        out[name] = np.concatenate(parts, axis=0)
    return out


def _pad_dim1(x: np.ndarray, width: int, value: float) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, width - x.shape[1])
    return np.pad(x, pad, constant_values=value)


class PredictionAccumulator:
    """Collect per-batch outputs (tensors or arrays, token arrays of any L), then one file.

    acc.add(binary_logits=..., ..., ids=batch["ids"]) per batch; acc.save(path) or acc.arrays().
    """

    def __init__(self) -> None:
        self.batches: list[dict[str, np.ndarray]] = []

    def add(self, **arrays: Any) -> None:
        self.batches.append({name: _to_numpy(v) for name, v in arrays.items()})

    def __len__(self) -> int:
        return sum(len(next(iter(b.values()))) for b in self.batches if b)

    def arrays(self) -> dict[str, np.ndarray]:
        return concat_predictions(self.batches)

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_predictions(path, **self.arrays())


# ---------------------------------------------------------------------------------------------- scoring
def score_predictions(
    arrays: Mapping[str, np.ndarray], chunk_size: int = 8192, validate: bool = True
) -> dict[str, float]:
    """The 12 DGM4 metrics (x100) then the extras, as floats, from validated prediction arrays."""
    import torch

    from asap.metrics.collection import INPUT_NAMES, DGM4Metrics

    if validate:
        validate_predictions(arrays)
    # validated above: no per-chunk checks; all data is local: never sync with other ranks
    metrics = DGM4Metrics(validate_args=False, sync_on_compute=False)
    n = len(arrays["binary_label"])
    with torch.inference_mode():
        for start in range(0, n, chunk_size):
            chunk = [
                torch.from_numpy(np.ascontiguousarray(arrays[k][start : start + chunk_size]))
                for k in INPUT_NAMES
            ]
            metrics.update(*chunk)
        return {name: float(value) for name, value in metrics.compute().items()}


def synthetic_predictions(
    num_samples: int, num_tokens: int = 128, seed: int = 0, record_fields: bool = False
) -> dict[str, np.ndarray]:
    """Random but plausible prediction arrays (scores correlated with the labels), for tests and benchmarks.

    Half the samples are fake with a non-empty set of types; FS/FA samples have a box, TS/TA ones fake
    tokens; each caption has 5..num_tokens tokens (the rest is padding); about a third of the no-box samples
    get a ~zero predicted box (the no-box rule). `record_fields`: each fake row is one of the 8 DGM4 kinds and
    the rows carry `index`, `fake_cls` and a DGM4-style `image` path (method folder or news source).
    """
    rng = np.random.default_rng(seed)
    n, L = num_samples, num_tokens
    fake = rng.random(n) < 0.5  # (N,)
    types = rng.random((n, 4)) < 0.5
    empty = np.flatnonzero(fake & ~types.any(1))
    types[empty, rng.integers(0, 4, len(empty))] = True
    types[~fake] = False
    if record_fields:
        types = _dgm4_kinds(fake, rng)
    has_box = types[:, :2].any(1)

    centre, size = rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.05, 0.4, (n, 2))
    box_target = np.where(has_box[:, None], np.concatenate([centre, size], 1), 0.0)
    box_pred = np.clip(box_target + rng.normal(0, 0.05, (n, 4)), 1e-3, 1.0)
    box_pred[~has_box & (rng.random(n) < 0.3)] = 1e-5  # a confident "no box"

    length = rng.integers(min(5, L), L + 1, n)  # (N,) real tokens per caption
    positions = np.arange(L)[None, :]
    text_fake = types[:, 2:].any(1)
    token_labels = (rng.random((n, L)) < 0.3) & text_fake[:, None]
    token_labels = np.where(positions < length[:, None], token_labels.astype(np.int64), IGNORE_INDEX)
    token_logits = np.zeros((n, L, 2), dtype=np.float32)
    token_logits[..., 1] = 1.5 * (token_labels == 1) - 1.0 + rng.normal(0, 1, (n, L))

    def noisy(signal: np.ndarray) -> np.ndarray:
        return (2.0 * signal - 1.0 + rng.normal(0, 1.2, signal.shape)).astype(np.float32)

    fields = _record_fields(types, rng) if record_fields else {}
    return fields | {
        "binary_logits": np.stack([np.zeros(n, np.float32), noisy(fake)], 1),
        "multilabel_logits": noisy(types),
        "box_pred": box_pred.astype(np.float32),
        "token_logits": token_logits,
        "binary_label": fake.astype(np.int64),
        "multilabel_label": types.astype(np.int64),
        "box_target": box_target.astype(np.float32),
        "token_labels": token_labels,
        "ids": np.arange(n),
    }


def _dgm4_kinds(fake: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) bool [FS, FA, TS, TA]: one of the 8 manipulated DGM4 kinds per fake row, none for a real one."""
    from asap.data.records import FAKE_CLASSES, multilabel

    table = np.asarray([multilabel(kind) for kind in FAKE_CLASSES], dtype=bool)  # (9, 4), row 0 = orig
    return table[np.where(fake, rng.integers(1, len(FAKE_CLASSES), len(fake)), 0)]


def _record_fields(types: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`index`, `fake_cls` and `image` of DGM4-like records with these (N, 4) types."""
    from asap.data.records import fake_cls_of

    methods = {0: ("infoswap", "simswap"), 1: ("StyleCLIP", "HFGI")}
    sources = ("guardian", "usa_today", "washington_post", "bbc")
    images = []
    for i, row in enumerate(types):
        pick = int(rng.integers(2))
        if row[0] or row[1]:
            method = methods[0 if row[0] else 1][pick]
            images.append(f"DGM4/manipulation/{method}/{i}-{method}.jpg")
        else:
            images.append(f"DGM4/origin/{sources[int(rng.integers(4))]}/{i // 1000:04d}/{i % 1000}.jpg")
    return {
        "index": np.arange(len(types)),
        "fake_cls": np.asarray([fake_cls_of(row) for row in types.astype(int)]),
        "image": np.asarray(images),
    }
