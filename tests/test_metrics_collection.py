"""`DGM4Metrics` and its four groups: names, x100, edge cases, accumulation over batches."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from asap.metrics import (
    EXTRA_METRIC_NAMES,
    METRIC_NAMES,
    BinaryDetectionMetrics,
    BoxGroundingMetrics,
    DGM4Metrics,
    MultiLabelMetrics,
    TokenGroundingMetrics,
)
from asap.metrics.collection import INPUT_NAMES
from asap.metrics.predictions import synthetic_predictions
from helpers import BOX_CASES

T = torch.tensor


def batch_tensors(
    arrays: dict[str, np.ndarray], rows: slice | np.ndarray = slice(None)
) -> list[torch.Tensor]:
    """The update arguments of DGM4Metrics, in order, for the given rows."""
    return [torch.from_numpy(np.ascontiguousarray(arrays[name][rows])) for name in INPUT_NAMES]


def values(metric: DGM4Metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metric.compute().items()}


def assert_same(a: dict[str, float], b: dict[str, float], tol: float = 1e-10) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=tol, nan_ok=True), key


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return synthetic_predictions(600, num_tokens=24, seed=3)


def test_names_paper_order_and_extras() -> None:
    assert METRIC_NAMES == (
        "AUC", "EER", "ACC", "mAP", "CF1", "OF1", "IoU_mean", "IoU50", "IoU75", "Precision", "Recall", "F1",
    )  # fmt: skip
    assert {"F1_FS", "F1_FA", "F1_TS", "F1_TA", "IoU_mean_boxed"} <= set(EXTRA_METRIC_NAMES)
    assert not set(METRIC_NAMES) & set(EXTRA_METRIC_NAMES)


def test_compute_keys_scale_and_dtype(data: dict[str, np.ndarray]) -> None:
    metric = DGM4Metrics()
    metric.update(*batch_tensors(data))
    out = metric.compute()
    assert list(out) == list(METRIC_NAMES) + list(EXTRA_METRIC_NAMES)
    assert all(v.dtype == torch.float64 and v.ndim == 0 for v in out.values())
    auc = roc_auc_score(
        data["binary_label"], torch.from_numpy(data["binary_logits"]).softmax(-1)[:, 1].numpy()
    )
    assert out["AUC"].item() == pytest.approx(100 * auc, abs=1e-9)
    for group in ("binary", "multilabel", "box", "token"):  # DGM4Metrics = groups x 100
        for key, value in metric[group].compute().items():
            assert out[key].item() == pytest.approx(100 * value.item(), abs=1e-12, nan_ok=True)


def test_groups_take_their_arguments_by_name() -> None:
    """Each group sees only its own inputs (a wrong binary label must not reach the token group)."""
    metric = DGM4Metrics()
    B, L = 3, 4
    metric.update(
        binary_logits=T([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]]),
        multilabel_logits=torch.zeros(B, 4),
        box_pred=torch.zeros(B, 4),
        token_logits=torch.zeros(B, L, 2),
        binary_label=T([1, 0, 0]),
        multilabel_label=torch.zeros(B, 4),
        box_target=torch.zeros(B, 4),
        token_labels=torch.zeros(B, L, dtype=torch.long),
    )
    assert metric["binary"].total.item() == 3 and metric["binary"].correct.item() == 2
    assert metric["box"].count.item() == 3 and metric["token"].tp.item() == 0


def test_accumulation_over_batches_equals_one_batch(data: dict[str, np.ndarray]) -> None:
    whole = DGM4Metrics()
    whole.update(*batch_tensors(data))
    parts = DGM4Metrics()
    bounds = [0, 7, 100, 101, 350, 600]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        tensors = batch_tensors(data, slice(start, stop))
        width = int((tensors[7] != -100).sum(1).max())  # batches with different L, as a DataLoader gives
        tensors[3], tensors[7] = tensors[3][:, :width], tensors[7][:, :width]
        parts.update(*tensors)
    assert_same(values(whole), values(parts))


def test_all_real_batches_accumulate(data: dict[str, np.ndarray]) -> None:
    real = np.flatnonzero(data["binary_label"] == 0)
    fake = np.flatnonzero(data["binary_label"] == 1)
    order = np.concatenate([real, fake])
    whole = DGM4Metrics()
    whole.update(*batch_tensors(data, order))
    parts = DGM4Metrics()
    for rows in np.array_split(order, 6):  # the first batches hold real samples only
        parts.update(*batch_tensors(data, rows))
    assert_same(values(whole), values(parts))


def test_all_real_set(data: dict[str, np.ndarray]) -> None:
    real = np.flatnonzero(data["binary_label"] == 0)
    metric = DGM4Metrics()
    metric.update(*batch_tensors(data, real))
    out = values(metric)
    assert math.isnan(out["AUC"]) and math.isnan(out["EER"])  # undefined with one class
    assert out["ACC"] == pytest.approx(100 * (data["binary_logits"][real].argmax(1) == 0).mean())
    for key in ("mAP", "CF1", "IoU_mean_boxed"):  # no positive type, no box
        assert math.isnan(out[key]), key
    assert math.isnan(out["OF1"])  # no positive at all: OR = 0/0, as the reference
    assert 0 <= out["IoU_mean"] <= 100 and out["Recall"] == 0.0  # no fake token: R defined as 0


def test_binary_acc_tie_goes_to_real_and_saturated_scores_tie() -> None:
    metric = BinaryDetectionMetrics()
    logits = T([[0.0, 0.0], [0.0, 0.0], [0.0, 30.0], [0.0, 40.0], [0.0, -1.0]])
    metric.update(logits, T([0, 1, 1, 0, 0]))
    out = metric.compute()
    assert out["ACC"].item() == pytest.approx(3 / 5)  # the two ties count as "real"
    # softmax in float32: scores 1.0 and 1.0 tie, so AUC = sklearn's on the tied float32 scores
    scores = logits.softmax(-1)[:, 1]
    assert scores[2] == scores[3] == 1.0
    assert out["AUC"].item() == pytest.approx(roc_auc_score([0, 1, 1, 0, 0], scores.numpy()), abs=1e-15)


def test_binary_auc_close_to_torchmetrics_but_in_float64() -> None:
    from torchmetrics.classification import BinaryAUROC

    arrays = synthetic_predictions(5000, num_tokens=4, seed=0)
    logits, labels = torch.from_numpy(arrays["binary_logits"]), torch.from_numpy(arrays["binary_label"])
    ours = BinaryDetectionMetrics()
    ours.update(logits, labels)
    theirs = BinaryAUROC()(logits.softmax(-1)[:, 1], labels)  # probabilities: no sigmoid guess
    auc = ours.compute()["AUC"]
    assert auc.dtype == torch.float64
    assert auc.item() == pytest.approx(theirs.item(), abs=1e-5)
    assert auc.item() == pytest.approx(roc_auc_score(labels, logits.softmax(-1)[:, 1]), abs=1e-13)


def test_multilabel_class_without_positive_and_without_predicted_positive() -> None:
    metric = MultiLabelMetrics()
    logits = T([[2.0, -1.0, 1.0, -1.0], [1.0, -2.0, -1.0, -1.0], [-1.0, -3.0, 0.5, -1.0]])
    labels = T([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0]]).float()  # TA: no positive; FA: no prediction
    metric.update(logits, labels)
    out = metric.compute()
    assert math.isnan(out["AP_TA"].item())
    aps = [out[f"AP_{t}"].item() for t in ("FS", "FA", "TS")]
    assert out["mAP"].item() == pytest.approx(sum(aps) / 3)  # mean over the classes with a positive
    assert out["F1_FA"].item() == 0.0  # Np = 0 taken as 1: P = 0, R = 0 -> F1 0
    assert math.isnan(out["F1_TA"].item()) and math.isnan(out["CF1"].item())
    # per class Nc = 1, 0, 1, 0; Np = 2, 0 -> 1, 2, 0 -> 1; Ng = 2, 2, 2, 0
    assert out["OP"].item() == pytest.approx(2 / 6) and out["OR"].item() == pytest.approx(2 / 6)
    assert out["CP"].item() == pytest.approx((1 / 2 + 0 + 1 / 2 + 0) / 4)


def test_box_group_hand_worked() -> None:
    metric = BoxGroundingMetrics()
    pred, target = T([c[0] for c in BOX_CASES]), T([c[1] for c in BOX_CASES])
    metric.update(pred[:4], target[:4])
    metric.update(pred[4:], target[4:])
    out = metric.compute()
    rule = np.array([c[2] for c in BOX_CASES], dtype=np.float32).astype(np.float64)
    assert out["IoU_mean"].item() == pytest.approx(rule.mean(), abs=1e-7)
    assert out["IoU50"].item() == pytest.approx((rule > 0.5).mean())  # strict: 0.5 itself is out
    assert out["IoU75"].item() == pytest.approx((rule > 0.75).mean())  # strict: 0.75 itself is out
    boxed = np.array([c[3] for c in BOX_CASES if any(c[1])], dtype=np.float64)
    assert out["IoU_mean_boxed"].item() == pytest.approx(boxed.mean(), abs=1e-7)
    assert out["IoU50_boxed"].item() == pytest.approx((boxed > 0.5).mean())


def test_token_group_with_no_predicted_positive() -> None:
    metric = TokenGroundingMetrics()
    labels = T([[1, 0, -100], [0, 1, 1]])
    metric.update(torch.stack([torch.ones(2, 3), torch.zeros(2, 3)], -1), labels)  # all "real"
    assert {k: v.item() for k, v in metric.compute().items()} == {"Precision": 0.0, "Recall": 0.0, "F1": 0.0}
    assert (metric.tp.item(), metric.fp.item(), metric.fn.item()) == (0, 0, 3)


def test_before_any_update_everything_is_nan() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        out = values(DGM4Metrics())
    nan = [k for k in METRIC_NAMES if math.isnan(out[k])]
    assert nan == [k for k in METRIC_NAMES if k not in ("Precision", "Recall", "F1")]
    assert out["F1"] == 0.0


def test_reset_and_forward(data: dict[str, np.ndarray]) -> None:
    metric = DGM4Metrics()
    metric.update(*batch_tensors(data, slice(0, 300)))
    metric.reset()
    batch = metric(*batch_tensors(data, slice(300, 600)))  # forward: this batch alone
    fresh = DGM4Metrics()
    fresh.update(*batch_tensors(data, slice(300, 600)))
    assert_same({k: float(v) for k, v in batch.items()}, values(fresh))
    assert_same(values(metric), values(fresh))


def test_state_is_small_for_grounding() -> None:
    metric = DGM4Metrics()
    arrays = synthetic_predictions(64, num_tokens=128, seed=0)
    for _ in range(3):
        metric.update(*batch_tensors(arrays))
    assert all(v.numel() == 1 for v in metric["token"].metric_state.values())
    assert all(v.numel() == 1 for v in metric["box"].metric_state.values())


@pytest.mark.parametrize(
    "position,bad,message",
    [
        (0, torch.zeros(4, 3), "binary_logits"),
        (4, T([0, 1, 2, 0]), "binary_label"),
        (5, torch.full((4, 4), 0.5), "multilabel_label"),
        (6, torch.zeros(3, 4), "box_target"),
        (7, torch.zeros(4, 5, dtype=torch.long), "token_labels"),
        (7, torch.full((4, 6), -1), "token_labels"),
    ],
)
def test_update_rejects_bad_inputs(position: int, bad: torch.Tensor, message: str) -> None:
    arrays = synthetic_predictions(4, num_tokens=6, seed=0)
    tensors = batch_tensors(arrays)
    tensors[position] = bad
    with pytest.raises(ValueError, match=message):
        DGM4Metrics().update(*tensors)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(data: dict[str, np.ndarray]) -> None:
    cpu, cuda = DGM4Metrics(), DGM4Metrics().to("cuda")
    cpu.update(*batch_tensors(data))
    cuda.update(*(t.cuda() for t in batch_tensors(data)))
    assert_same(values(cpu), values(cuda), tol=1e-6)
