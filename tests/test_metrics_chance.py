"""The best constant box (the boxed columns' chance level) against boxes where the answer is known."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

from asap.errors import DGM4DataError
from asap.metrics.chance import (
    best_constant_box,
    constant_box_scores,
    main,
    model_vs_constant,
    paired_bootstrap,
    split_boxes,
)
from asap.metrics.predictions import load_predictions, save_predictions, synthetic_predictions


def test_one_repeated_box_is_found_exactly_enough() -> None:
    target = torch.tensor([[0.2, 0.3, 0.6, 0.7]])
    for criterion in ("mean_iou", "iou50"):
        box, score = best_constant_box(target.repeat(5, 1), criterion)
        assert box_iou(box[None], target).item() > 0.95
        scores = constant_box_scores(box, target)
        assert scores["iou50"] == 100.0
        if criterion == "mean_iou":
            assert scores["mean_iou"] == pytest.approx(100 * score)


def test_the_criteria_pick_different_boxes_on_two_clusters() -> None:
    """60 % small boxes top-left, 40 % big boxes right: IoU50 takes the majority cluster, and no box scores more."""
    small, big = torch.tensor([0.05, 0.05, 0.25, 0.25]), torch.tensor([0.4, 0.1, 0.95, 0.9])
    jitter = torch.linspace(-0.01, 0.01, 10)[:, None]
    targets = torch.cat([(small + jitter).repeat(6, 1), (big + jitter).repeat(4, 1)])  # (100, 4)
    box50, score50 = best_constant_box(targets, "iou50")
    assert constant_box_scores(box50, targets)["iou50"] == pytest.approx(60.0)
    assert box_iou(box50[None], small[None]).item() > 0.5
    box_mean, _ = best_constant_box(targets, "mean_iou")
    candidates = {"fit": box_mean, "small": small, "big": big}
    mean_of = {name: constant_box_scores(b, targets)["mean_iou"] for name, b in candidates.items()}
    assert mean_of["fit"] >= max(mean_of["small"], mean_of["big"]) - 0.1  # a grid search: within 0.1 point


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="criterion"):
        best_constant_box(torch.rand(3, 4), "median")
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        best_constant_box(torch.empty(0, 4))


def test_split_boxes_and_the_command_on_the_synthetic_set(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    boxes = split_boxes(synthetic_root, "DGM4/metadata/train.json")
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 1
    assert main([str(synthetic_root), "--score", "test"]) == 0
    out = capsys.readouterr().out
    assert "best constant box for mean_iou on train" in out and "test (" in out
    with pytest.raises(SystemExit):  # predictions are on one split
        main([str(synthetic_root), "--predictions", "x.npz"])
    path = save_predictions(tmp_path / "predictions_test.npz", **synthetic_predictions(30, 8))
    assert main([str(synthetic_root), "--score", "test", "--predictions", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mean_iou minus this box's" in out and "iou50 minus this box's" in out


def test_paired_bootstrap_interval_covers_the_gain_and_excludes_zero_only_when_clear() -> None:
    g = torch.Generator().manual_seed(0)
    constant = torch.rand(200, generator=g) * 0.3
    better = constant + 0.1 + 0.05 * torch.randn(200, generator=g)
    gain, low, high = paired_bootstrap(better, constant)
    assert low < gain < high and low > 0 and gain == pytest.approx(100 * float((better - constant).mean()))
    same = constant + 0.05 * torch.randn(200, generator=g)
    _, low, high = paired_bootstrap(same, constant)
    assert low < 0 < high  # noise around the constant box is not above chance


def test_model_vs_constant_on_a_prediction_file(tmp_path: Path) -> None:
    """Perfect boxes gain over any constant box; the constant box itself gains exactly 0."""
    predictions = synthetic_predictions(40, num_tokens=8, seed=1)
    boxed = predictions["box_target"].sum(axis=1) > 0
    assert boxed.any() and (~boxed).any()
    predictions["box_pred"] = predictions["box_target"].copy()  # the model is exact on every pair
    path = save_predictions(tmp_path / "predictions_test.npz", **predictions)
    band = torch.tensor([0.1, 0.2, 0.9, 0.5])
    for criterion in ("mean_iou", "iou50"):  # each gain is on the criterion's own per-pair value
        exact = model_vs_constant(load_predictions(path), band, criterion)
        assert exact["mean_iou"] == pytest.approx(100.0) and exact["iou50"] == pytest.approx(100.0)
        assert exact["low"] > 0
    assert exact["gain"] == pytest.approx(100.0)  # the band is never > 0.5 IoU with these targets
    cx, cy, w, h = 0.5, 0.35, 0.8, 0.3  # the band as cx cy w h
    predictions["box_pred"][:] = [cx, cy, w, h]
    same = model_vs_constant(predictions, band)
    assert same["gain"] == pytest.approx(0.0, abs=1e-4) and same["low"] == pytest.approx(0.0, abs=1e-4)


def test_a_box_outside_its_image_is_an_error_naming_the_record(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(synthetic_root, root)
    split = root / "DGM4/metadata/train.json"
    records = json.loads(split.read_text())
    index = next(i for i, r in enumerate(records) if r["fake_image_box"])
    records[index]["fake_image_box"] = [0, 0, 10_000, 10]
    split.write_text(json.dumps(records))
    with pytest.raises(DGM4DataError, match=rf"train.json: record #{index} .*does not fit"):
        split_boxes(root, "DGM4/metadata/train.json")
