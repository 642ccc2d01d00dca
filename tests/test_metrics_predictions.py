"""Prediction files: save/load round trip, validation errors naming the array, batch padding, scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asap.errors import PredictionFileError
from asap.metrics import ALL_METRIC_NAMES, DGM4Metrics
from asap.metrics.collection import INPUT_NAMES
from asap.metrics.predictions import (
    PredictionAccumulator,
    concat_predictions,
    load_predictions,
    save_predictions,
    score_predictions,
    synthetic_predictions,
    validate_predictions,
)


@pytest.fixture()
def arrays() -> dict[str, np.ndarray]:
    return synthetic_predictions(50, num_tokens=12, seed=1)


def test_round_trip(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = save_predictions(tmp_path / "sub" / "preds", index=np.arange(50), **arrays)
    assert path == tmp_path / "sub" / "preds" and path.is_file()  # no ".npz" appended, no temp file left
    assert sorted(p.name for p in path.parent.iterdir()) == ["preds"]
    loaded = load_predictions(path)
    assert set(loaded) == set(arrays) | {"index"}
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
    assert loaded["token_labels"].dtype == np.int8 and loaded["token_logits"].dtype == np.float32


def test_save_accepts_tensors_and_string_ids(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    given = {k: torch.from_numpy(v) for k, v in arrays.items()} | {"ids": [f"r{i}" for i in range(50)]}
    loaded = load_predictions(save_predictions(tmp_path / "p.npz", **given))
    assert loaded["ids"][3] == "r3"
    assert score_predictions(loaded) == score_predictions(arrays)


def _broken(arrays: dict[str, np.ndarray], name: str, value: object) -> dict[str, np.ndarray]:
    out = dict(arrays)
    if value is None:
        del out[name]
    else:
        out[name] = value(out[name]) if callable(value) else value
    return out


def _with(index: tuple, v: float):  # noqa: ANN202
    def change(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[index] = v
        return x

    return change


BROKEN = [  # (array, change, words the message must contain)
    ("box_pred", None, "missing array(s) box_pred"),
    ("binary_logits", lambda x: x[:, :1], "'binary_logits' has shape (50, 1), expected (N, 2)"),
    ("token_logits", lambda x: x[..., 0], "'token_logits' has shape (50, 12)"),
    ("multilabel_logits", lambda x: x.astype(np.int64), "'multilabel_logits' has dtype int64"),
    ("binary_label", lambda x: x[:49], "'binary_label' has 49 samples"),
    ("token_labels", lambda x: x[:, :10], "'token_labels' has 10 token positions"),
    ("box_pred", _with((3, 1), np.nan), "'box_pred' holds NaN or inf"),
    ("token_logits", _with((0, 0, 0), np.inf), "'token_logits' holds NaN or inf"),
    ("binary_label", _with(0, 2), "'binary_label' holds 2"),
    ("multilabel_label", lambda x: np.full(x.shape, 0.5), "'multilabel_label' holds 0.5"),
    ("token_labels", _with((0, 0), -1), "'token_labels' holds -1"),
    ("box_target", _with((0, 2), 1.5), "'box_target' has values outside [0.0, 1.0]"),
    ("ids", lambda x: x.astype(np.float64), "'ids' has dtype float64"),
]


@pytest.mark.parametrize("name,change,message", BROKEN)
def test_validation_names_the_array(
    arrays: dict[str, np.ndarray], name: str, change: object, message: str
) -> None:
    with pytest.raises(PredictionFileError) as err:
        validate_predictions(_broken(arrays, name, change), source="f.npz")
    assert str(err.value).startswith("f.npz: ") and message in str(err.value)


@pytest.mark.parametrize("name,change,message", BROKEN[:3] + BROKEN[6:8])
def test_load_validates(
    tmp_path: Path, arrays: dict[str, np.ndarray], name: str, change: object, message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **_broken(arrays, name, change))  # written around save_predictions' checks
    with pytest.raises(PredictionFileError, match="bad.npz") as err:
        load_predictions(path)
    assert message in str(err.value)


def test_save_validates(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(PredictionFileError, match="binary_label"):
        save_predictions(tmp_path / "p.npz", **_broken(arrays, "binary_label", _with(0, 3)))
    assert not any(tmp_path.iterdir())


def test_load_errors(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(PredictionFileError, match="no such file"):
        load_predictions(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(PredictionFileError, match="not a .npz file"):
        load_predictions(tmp_path / "text.npz")
    np.savez(tmp_path / "object.npz", **(arrays | {"ids": np.array([object()] * 50)}))
    with pytest.raises(PredictionFileError, match="not a readable .npz"):
        load_predictions(tmp_path / "object.npz")
    np.savez(tmp_path / "empty.npz", **{k: v[:0] for k, v in arrays.items()})
    with pytest.raises(PredictionFileError, match="no sample"):
        load_predictions(tmp_path / "empty.npz")


def test_concat_pads_token_arrays(arrays: dict[str, np.ndarray]) -> None:
    batches = []
    for rows, width in ((slice(0, 20), 12), (slice(20, 35), 7), (slice(35, 50), 9)):
        batch = {k: v[rows] for k, v in arrays.items()}
        batch["token_logits"] = batch["token_logits"][:, :width]
        batch["token_labels"] = batch["token_labels"][:, :width]  # the tokens cut here are dropped
        batches.append(batch)
    joined = concat_predictions(batches)
    assert joined["token_labels"].shape == (50, 12) and joined["token_logits"].shape == (50, 12, 2)
    np.testing.assert_array_equal(joined["token_labels"][20:35, :7], arrays["token_labels"][20:35, :7])
    assert (joined["token_labels"][20:35, 7:] == -100).all() and (
        joined["token_logits"][20:35, 7:] == 0
    ).all()
    assert (joined["token_labels"][35:, 9:] == -100).all() and (joined["token_logits"][35:, 9:] == 0).all()
    validate_predictions(joined)
    # scoring the padded file = accumulating the batches with their own widths
    metric = DGM4Metrics()
    for b in batches:
        metric.update(*(torch.from_numpy(np.ascontiguousarray(b[k])) for k in INPUT_NAMES))
    direct = {k: float(v) for k, v in metric.compute().items()}
    assert score_predictions(joined) == pytest.approx(direct, abs=1e-10, nan_ok=True)


def test_accumulator(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    acc = PredictionAccumulator()
    for start in range(0, 50, 16):
        rows = slice(start, start + 16)
        batch = {k: torch.from_numpy(v[rows]) for k, v in arrays.items() if k != "ids"}
        width = 12 - start // 16  # shrinking widths: 12, 11, 10, 9
        batch["token_logits"], batch["token_labels"] = (
            batch["token_logits"][:, :width],
            batch["token_labels"][:, :width],
        )
        acc.add(**batch, ids=[str(i) for i in range(start, min(start + 16, 50))])
    assert len(acc) == 50
    loaded = load_predictions(acc.save(tmp_path / "acc.npz"))
    assert loaded["token_labels"].shape == (50, 12) and loaded["ids"][-1] == "49"


def test_score_predictions_matches_the_metric_and_ignores_chunking(arrays: dict[str, np.ndarray]) -> None:
    metric = DGM4Metrics()
    metric.update(*(torch.from_numpy(arrays[k]) for k in INPUT_NAMES))
    direct = {k: float(v) for k, v in metric.compute().items()}
    scores = score_predictions(arrays)
    assert list(scores) == list(ALL_METRIC_NAMES)
    assert scores == pytest.approx(direct, abs=1e-10, nan_ok=True)
    assert score_predictions(arrays, chunk_size=7) == pytest.approx(direct, abs=1e-10, nan_ok=True)
    with pytest.raises(PredictionFileError, match="box_target"):
        score_predictions(_broken(arrays, "box_target", None))
