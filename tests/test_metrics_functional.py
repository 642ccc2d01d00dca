"""The protocol's metric functions: hand-worked cases, sklearn, and re-implementations of the HAMMER code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from asap.metrics import functional as F
from helpers import BOX_CASES

T = torch.tensor


# ---------------------------------------------------------------------------------------------- references
def hammer_eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """HAMMER's test code, verbatim: brentq on 1 - x - interp1d(fpr, tpr)(x)."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def bisection_eer(labels: np.ndarray, scores: np.ndarray, steps: int = 200) -> float:
    """An independent root: bisection on 1 - x - np.interp(x, fpr, tpr) (sklearn ROC, duplicates dropped)."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=True)
    f = lambda x: 1.0 - x - np.interp(x, fpr, tpr)  # noqa: E731
    lo, hi = 0.0, 1.0
    if f(lo) <= 0:
        return lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return hi


def hammer_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """ML-GCN's AveragePrecisionMeter.average_precision (difficult_examples=False), in order of a stable sort."""
    pos_count = total_count = precision_at_i = 0.0
    for i in np.argsort(-scores, kind="stable"):
        total_count += 1
        if targets[i] == 1:
            pos_count += 1
            precision_at_i += pos_count / total_count
    return precision_at_i / pos_count


def hammer_overall(scores: np.ndarray, targets: np.ndarray) -> tuple[float, ...]:
    """ML-GCN's AveragePrecisionMeter.evaluation: OP, OR, OF1, CP, CR, CF1."""
    n_class = scores.shape[1]
    Nc, Np, Ng = np.zeros(n_class), np.zeros(n_class), np.zeros(n_class)
    for k in range(n_class):
        Ng[k] = np.sum(targets[:, k] == 1)
        Np[k] = np.sum(scores[:, k] >= 0)
        Nc[k] = np.sum(targets[:, k] * (scores[:, k] >= 0))
    Np[Np == 0] = 1
    OP, OR = np.sum(Nc) / np.sum(Np), np.sum(Nc) / np.sum(Ng)
    CP, CR = np.sum(Nc / Np) / n_class, np.sum(Nc / Ng) / n_class
    return OP, OR, 2 * OP * OR / (OP + OR), CP, CR, 2 * CP * CR / (CP + CR)


def hammer_box_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DETR's box_ops as HAMMER uses them (all pairs, then the diagonal), with the test-time no-box loop."""

    def to_xyxy(b: torch.Tensor) -> torch.Tensor:
        cx, cy, w, h = b.unbind(-1)
        return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)

    b1, b2 = to_xyxy(pred), to_xyxy(target)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    iou = inter / (area(b1)[:, None] + area(b2) - inter)
    for idx in torch.where(b2[:, 0] == 0)[0]:
        if all(b1[idx, :] < 1e-4):
            iou[idx, idx] = 1
    return torch.diagonal(iou)


def random_binary(seed: int, n: int = 300, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and float32 scores correlated with them; `levels` quantises the scores (many ties)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(1.2 * labels + rng.normal(0, 1, n))))
    if levels:
        scores = np.round(scores * levels) / levels
    return labels, scores.astype(np.float32)


# ---------------------------------------------------------------------------------------------- binary
def test_binary_scores_are_float32_softmax_and_argmax_ties_go_to_real() -> None:
    logits = T([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0], [0.0, 40.0]], dtype=torch.float64)
    scores = F.binary_scores(logits)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores[:3], T([0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(3))]))
    assert scores[3] == 1.0  # saturates in float32, as the reference's scores do
    assert F.binary_predictions(logits).tolist() == [0, 1, 0, 1]


def test_roc_curve_matches_sklearn_without_dropped_points() -> None:
    labels, scores = random_binary(0, levels=10)
    fpr, tpr = F.roc_curve(torch.from_numpy(scores), torch.from_numpy(labels))
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert fpr.dtype == tpr.dtype == torch.float64
    np.testing.assert_allclose(fpr.numpy(), ref_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr.numpy(), ref_tpr, atol=1e-15)


def test_auroc_hand_worked() -> None:
    # pairs (pos, neg): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok -> 3/4
    assert F.auroc(T([0.1, 0.4, 0.35, 0.8]), T([0, 0, 1, 1])).item() == pytest.approx(0.75, abs=1e-15)
    # a tie between a positive and a negative counts one half
    assert F.auroc(T([0.5, 0.5, 0.9]), T([0, 1, 1])).item() == pytest.approx(0.75, abs=1e-15)


@pytest.mark.parametrize("seed,levels", [(0, None), (1, None), (2, 5), (3, 20)])
def test_auroc_matches_sklearn(seed: int, levels: int | None) -> None:
    labels, scores = random_binary(seed, n=500, levels=levels)
    ours = F.auroc(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    assert ours == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_and_eer_are_nan_with_one_class() -> None:
    scores = T([0.1, 0.7, 0.3])
    for labels in (T([0, 0, 0]), T([1, 1, 1])):
        assert math.isnan(F.auroc(scores, labels).item())
        assert math.isnan(F.binary_eer(scores, labels).item())
    assert math.isnan(F.binary_eer(T([]), T([], dtype=torch.long)).item())


@pytest.mark.parametrize(
    "scores,labels,eer",
    [
        # ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1): TPR = .5 on [0, .5], root of .5 - x at .5
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.5),
        # a tie (pos, neg) draws the diagonal (0,.5)-(.5,1): 1 - x = .5 + x at x = .25
        ([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0], 0.25),
        # vertical step at FPR 1/3 from TPR 1/3 to 1: f jumps over 0 there
        ([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 0, 1, 1, 0, 0], 1 / 3),
        # perfect separation: TPR(0) = 1, EER 0
        ([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], 0.0),
        # everything inverted: EER 1
        ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 1.0),
    ],
)
def test_eer_hand_worked(scores: list[float], labels: list[int], eer: float) -> None:
    ours = F.binary_eer(T(scores), T(labels)).item()
    assert ours == pytest.approx(eer, abs=1e-15)
    assert hammer_eer(np.array(labels), np.array(scores)) == pytest.approx(eer, abs=1e-9)


@pytest.mark.parametrize("seed,levels", [(0, None), (1, None), (2, 4), (3, 10), (4, 50)])
def test_eer_matches_hammer_brentq_and_bisection(seed: int, levels: int | None) -> None:
    labels, scores = random_binary(seed, n=400, levels=levels)
    ours = F.binary_eer(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    assert ours == pytest.approx(hammer_eer(labels, scores), abs=1e-10)
    assert ours == pytest.approx(bisection_eer(labels, scores), abs=1e-10)


def test_eer_differs_from_torchmetrics_nearest_point() -> None:
    from torchmetrics.classification import BinaryEER

    labels, scores = random_binary(5, n=50)
    ours = F.binary_eer(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    nearest = BinaryEER()(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    assert ours == pytest.approx(hammer_eer(labels, scores), abs=1e-10)
    assert abs(ours - nearest) > 1e-4  # the protocol interpolates; torchmetrics takes a ROC point


# ---------------------------------------------------------------------------------------------- multi-label
def test_average_precision_hand_worked() -> None:
    scores = T([[0.9, 0.5], [0.8, 0.5], [0.7, 0.5], [0.6, 0.1]])
    labels = T([[1, 0], [0, 1], [1, 1], [0, 0]])
    ap = F.protocol_average_precision(scores, labels)
    # class 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2; class 1: tie kept in input order, hits at 2, 3
    torch.testing.assert_close(ap, T([5 / 6, (1 / 2 + 2 / 3) / 2], dtype=torch.float64))


def test_average_precision_on_ties_is_not_sklearns() -> None:
    scores, labels = T([[0.5], [0.5], [0.5]]), T([[0], [1], [1]])
    ours = F.protocol_average_precision(scores, labels).item()
    assert ours == pytest.approx((1 / 2 + 2 / 3) / 2)  # ranks 1..3 in input order
    assert average_precision_score(labels[:, 0], scores[:, 0]) == pytest.approx(2 / 3)  # one threshold


def test_average_precision_nan_for_a_class_without_positive() -> None:
    ap = F.protocol_average_precision(T([[0.3, 1.0], [0.2, -1.0]]), T([[1, 0], [0, 0]]))
    assert ap[0].item() == 1.0 and math.isnan(ap[1].item())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn_and_hammer_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, (200, 4))
    scores = (labels + rng.normal(0, 1, (200, 4))).astype(np.float32)
    ours = F.protocol_average_precision(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    for k in range(4):
        assert ours[k] == pytest.approx(average_precision_score(labels[:, k], scores[:, k]), abs=1e-12)
        assert ours[k] == pytest.approx(hammer_ap(scores[:, k], labels[:, k]), abs=1e-12)


def test_multilabel_f1_hand_worked_with_no_predicted_positive() -> None:
    logits = T([[1.0, -1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, -1.0]])
    labels = T([[1, 1], [1, 0], [0, 0], [0, 0]])
    nc, np_, ng = F.multilabel_counts(logits, labels)
    assert (nc.tolist(), np_.tolist(), ng.tolist()) == ([1, 0], [2, 0], [2, 1])
    s = F.multilabel_f1(nc, np_, ng)
    # Np of class 1 taken as 1: OP = 1/3 (not 1/2), OR = 1/3; CP = (1/2 + 0)/2, CR = (1/2 + 0)/2
    expected = {"OP": 1 / 3, "OR": 1 / 3, "OF1": 1 / 3, "CP": 0.25, "CR": 0.25, "CF1": 0.25}
    for key, value in expected.items():
        assert s[key].item() == pytest.approx(value, abs=1e-15), key
    assert s["f1"].tolist() == [0.5, 0.0]  # P + R = 0 -> 0
    ref = hammer_overall(logits.numpy(), labels.numpy())
    np.testing.assert_allclose([s[k].item() for k in ("OP", "OR", "OF1", "CP", "CR", "CF1")], ref, atol=1e-15)


def test_multilabel_f1_class_without_positive_is_nan_like_the_reference() -> None:
    logits, labels = T([[1.0, 1.0], [-1.0, -1.0]]), T([[1, 0], [0, 0]])
    s = F.multilabel_f1(*F.multilabel_counts(logits, labels))
    assert math.isnan(s["CR"].item()) and math.isnan(s["CF1"].item()) and math.isnan(s["f1"][1].item())
    assert s["OF1"].item() == pytest.approx(2 / 3)  # 1 of 2 predicted, 1 of 1 found
    with np.errstate(invalid="ignore", divide="ignore"):
        assert math.isnan(hammer_overall(logits.numpy(), labels.numpy())[-1])


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_f1_matches_sklearn_and_hammer(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, (300, 4))
    logits = (labels - 0.5 + rng.normal(0, 1, (300, 4))).astype(np.float32)
    s = F.multilabel_f1(*F.multilabel_counts(torch.from_numpy(logits), torch.from_numpy(labels)))
    pred = (logits >= 0).astype(int)  # every class has predicted positives: the Np rule is inactive
    ref = hammer_overall(logits, labels)
    np.testing.assert_allclose([s[k].item() for k in ("OP", "OR", "OF1", "CP", "CR", "CF1")], ref, atol=1e-14)
    assert s["OF1"].item() == pytest.approx(f1_score(labels, pred, average="micro"), abs=1e-14)
    assert s["CP"].item() == pytest.approx(precision_score(labels, pred, average="macro"), abs=1e-14)
    assert s["CR"].item() == pytest.approx(recall_score(labels, pred, average="macro"), abs=1e-14)
    np.testing.assert_allclose(s["f1"].numpy(), f1_score(labels, pred, average=None), atol=1e-14)
    # CF1 is the harmonic mean of macro P and R, not sklearn's macro F1 (the mean of per-class F1)
    assert abs(s["CF1"].item() - f1_score(labels, pred, average="macro")) > 1e-6


# ---------------------------------------------------------------------------------------------- boxes
def test_box_iou_hand_worked_and_no_box_rule() -> None:
    pred, target = T([c[0] for c in BOX_CASES]), T([c[1] for c in BOX_CASES])
    torch.testing.assert_close(F.box_iou_protocol(pred, target), T([c[2] for c in BOX_CASES]))
    torch.testing.assert_close(F.box_iou_pairs(pred, target), T([c[3] for c in BOX_CASES]))


def test_box_iou_equals_hammer_box_ops_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(64, 4, generator=g) * 0.5 + 0.1
    target[::4] = 0  # no-box rows
    pred = (target + 0.05 * torch.randn(64, 4, generator=g)).clamp(0, 1)
    pred[::8] = 0  # half the no-box rows predicted empty
    pred[3] = 0  # a real box predicted empty
    ours = F.box_iou_protocol(pred, target)
    ref = hammer_box_iou(pred, target)
    assert torch.equal(ours[~torch.isnan(ref)], ref[~torch.isnan(ref)])
    assert torch.isnan(ref).sum() == 0 or (ours[torch.isnan(ref)] == 0).all()


def test_box_iou_empty_union_is_zero_not_nan() -> None:
    # a zero-area prediction against a no-box target, corners not all below 1e-4: the reference gives NaN
    iou = F.box_iou_protocol(T([[0.5, 0.5, 0.0, 0.0]]), T([[0.0, 0.0, 0.0, 0.0]]))
    assert iou.tolist() == [0.0]
    assert torch.isnan(hammer_box_iou(T([[0.5, 0.5, 0.0, 0.0]]), T([[0.0, 0.0, 0.0, 0.0]]))).all()


# ---------------------------------------------------------------------------------------------- tokens
def test_token_counts_hand_worked() -> None:
    # row 0: fake->fake (TP), fake->real (FN), real->fake (FP), padding->fake (ignored)
    # row 1: real->real, real with tied logits -> real, padding
    logits = T([[[0, 1], [1, 0], [0, 1], [0, 1]], [[1, 0], [0.5, 0.5], [0, 1], [0, 1]]], dtype=torch.float32)
    labels = T([[1, 1, 0, -100], [0, 0, -100, -100]])
    tp, fp, fn = F.token_counts(logits, labels)
    assert (tp.item(), fp.item(), fn.item()) == (1, 1, 1)
    assert [v.item() for v in F.precision_recall_f1(tp, fp, fn)] == [0.5, 0.5, 0.5]


def test_token_scores_defined_where_a_denominator_is_zero() -> None:
    zero = torch.tensor(0)
    # no predicted fake token: P = 0 (0/0), R = 0 (0/3), F1 = 0
    assert [v.item() for v in F.precision_recall_f1(zero, zero, torch.tensor(3))] == [0.0, 0.0, 0.0]
    # no fake token at all and none predicted (an all-real set)
    assert [v.item() for v in F.precision_recall_f1(zero, zero, zero)] == [0.0, 0.0, 0.0]
    # predicted fakes but no fake token: P = 0, R = 0 (0/0)
    assert [v.item() for v in F.precision_recall_f1(zero, torch.tensor(2), zero)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("seed", [0, 1])
def test_token_scores_match_sklearn(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (20, 16), generator=g)
    labels[:, 10:] = -100
    logits = torch.randn(20, 16, 2, generator=g) + torch.stack([torch.zeros_like(labels), labels], -1)
    p, r, f1 = F.precision_recall_f1(*F.token_counts(logits, labels))
    keep = labels != -100
    ref = precision_recall_fscore_support(labels[keep], logits.argmax(-1)[keep], average="binary")
    np.testing.assert_allclose([p.item(), r.item(), f1.item()], ref[:3], atol=1e-14)
