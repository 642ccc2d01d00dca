"""The HAMMER protocol's metric computations as pure functions (fractions in [0, 1], float64 results).

Model outputs are handled in float32, as the reference code does (its numbers come from float32 tensors: the
binary score saturates and ties in float32, IoU thresholds are compared in float32); every rate, mean and
root is then computed in float64, so results match the reference's NumPy/Python arithmetic to ~1e-12.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_area, box_convert

NAN = float("nan")
NO_BOX_EPS = 1e-4  # HAMMER: a prediction with all four corners below this matches "no box"


# ---------------------------------------------------------------------------------------------- binary
def binary_scores(binary_logits: Tensor) -> Tensor:
    """(B, 2) logits -> (B,) float32 probability of "fake" (softmax in float32, as the reference)."""
    return binary_logits.float().softmax(dim=-1)[:, 1]


def binary_predictions(binary_logits: Tensor) -> Tensor:
    """(B, 2) logits -> (B,) 0/1 argmax; a tie goes to real (0), as `torch.argmax` takes the first maximum."""
    return binary_logits.float().argmax(dim=-1)


def roc_curve(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(N,) scores, (N,) 0/1 labels -> float64 (fpr, tpr) at every distinct score, starting at (0, 0).

    sklearn's `roc_curve(drop_intermediate=False)` (the dropped points are collinear: same curve). A class with
    no sample gives NaN rates. torchmetrics' `BinaryROC` computes the same points but divides in float32.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order].long()  # (N,) by decreasing score
    last = torch.nonzero(s[1:] != s[:-1]).squeeze(1)  # last index of each group of tied scores...
    idx = torch.cat([last, last.new_tensor([s.numel() - 1])])  # ...and of the final group
    tps = y.cumsum(0)[idx]
    fps = idx + 1 - tps
    zero = tps.new_zeros(1)
    tps, fps = torch.cat([zero, tps]).double(), torch.cat([zero, fps]).double()
    return fps / fps[-1], tps / tps[-1]  # 0/0 = NaN where a class is absent


def auroc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC (sklearn `roc_auc_score`, ties handled by the trapezoid); NaN without both classes."""
    if scores.numel() == 0:
        return torch.tensor(NAN, dtype=torch.float64)
    fpr, tpr = roc_curve(scores, labels)
    return torch.trapezoid(tpr, fpr)


def interpolated_eer(fpr: Tensor, tpr: Tensor) -> Tensor:
    """The root of f(x) = 1 - x - TPR(x) on [0, 1], TPR linearly interpolated over the ROC points.

    The reference runs `brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`; interp1d (np.interp) takes the
    last point, the highest TPR, where the ROC has several points at one FPR (a vertical step). f is then
    strictly decreasing and right-continuous, so the root is found exactly: inside the linear piece where f
    crosses 0, or at a step where f jumps over 0 (brentq converges to the step). NaN without both classes.
    """
    if fpr.numel() == 0 or bool(torch.isnan(fpr).any() or torch.isnan(tpr).any()):
        return torch.tensor(NAN, dtype=torch.float64)
    step = fpr[1:] != fpr[:-1]  # (M-1,) a new FPR value starts at i+1
    first = torch.cat([step.new_ones(1), step])  # first point of each distinct FPR (lowest TPR)
    last = torch.cat([step, step.new_ones(1)])  # last point of each distinct FPR (highest TPR)
    x, tpr_lo, tpr_hi = fpr[first], tpr[first], tpr[last]  # (U,)
    f = 1 - x - tpr_hi  # f at each distinct FPR; f = -1 at FPR 1
    i = int(torch.nonzero(f <= 0)[0])
    if i == 0:
        return x[0]
    f_left = 1 - x[i] - tpr_lo[i]  # limit of f just left of x[i] (the linear piece ends at the lowest TPR)
    if f_left > 0:
        return x[i]  # f jumps over 0 at a vertical step of the ROC
    return x[i - 1] + f[i - 1] * (x[i] - x[i - 1]) / (f[i - 1] - f_left)


def binary_eer(scores: Tensor, labels: Tensor) -> Tensor:
    """Equal error rate of (N,) scores against (N,) 0/1 labels (see `interpolated_eer`)."""
    if scores.numel() == 0:
        return torch.tensor(NAN, dtype=torch.float64)
    return interpolated_eer(*roc_curve(scores, labels))


# ---------------------------------------------------------------------------------------------- multi-label
def protocol_average_precision(scores: Tensor, labels: Tensor) -> Tensor:
    """(N, K) scores, (N, K) 0/1 labels -> (K,) float64 non-interpolated AP per class (HAMMER / ML-GCN).

    Sort descending; AP = sum over positives of (positives so far / rank) / number of positives. Tied scores
    keep their input order (a stable sort); the reference's unstable `torch.sort` leaves their order to the
    implementation. Unlike sklearn/torchmetrics, tied scores are not grouped into one threshold. A class with
    no positive gets NaN (the reference divides by zero there).
    """
    n = scores.shape[0]
    order = torch.argsort(scores, dim=0, descending=True, stable=True)  # (N, K)
    hits = labels.gather(0, order).double()  # (N, K) 1 where the sample at this rank is positive
    rank = torch.arange(1, n + 1, dtype=torch.float64, device=scores.device)[:, None]  # (N, 1)
    return (hits * hits.cumsum(0) / rank).sum(0) / hits.sum(0)


def multilabel_counts(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(N, K) logits and 0/1 labels -> (K,) Nc (true positives), Np (predicted, logit >= 0), Ng (positives)."""
    pred, pos = logits >= 0, labels == 1  # (N, K)
    return (pred & pos).sum(0), pred.sum(0), pos.sum(0)


def f1_score(precision: Tensor, recall: Tensor) -> Tensor:
    """Harmonic mean 2PR/(P+R); 0 where P + R = 0 (the reference gives NaN there); NaN stays NaN."""
    total = precision + recall
    return torch.where(total == 0, torch.zeros_like(total), 2 * precision * recall / total)


def multilabel_f1(nc: Tensor, np_: Tensor, ng: Tensor) -> dict[str, Tensor]:
    """OP, OR, OF1 (micro), CP, CR, CF1 (macro P and R, then their harmonic mean) and per-class P, R, F1.

    Np is taken as 1 where it is 0 (the reference's rule). A class with no positive has an undefined recall:
    its R and F1, CR and CF1 are NaN (as the reference's NumPy division gives); OR is NaN with no positive
    at all.
    """
    nc, ng = nc.double(), ng.double()  # (K,)
    np_ = np_.double().clamp(min=1)  # Np[Np == 0] = 1
    op, or_ = nc.sum() / np_.sum(), nc.sum() / ng.sum()
    p, r = nc / np_, nc / ng  # (K,) per class
    cp, cr = p.mean(), r.mean()
    return {
        "OP": op,
        "OR": or_,
        "OF1": f1_score(op, or_),
        "CP": cp,
        "CR": cr,
        "CF1": f1_score(cp, cr),
        "precision": p,
        "recall": r,
        "f1": f1_score(p, r),
    }


# ---------------------------------------------------------------------------------------------- grounding
def box_iou_pairs(box_pred: Tensor, box_target: Tensor) -> Tensor:
    """(B, 4) predicted and target boxes (cx, cy, w, h) -> (B,) float32 plain IoU of each pair (not all pairs).

    Same float32 operations as the reference (DETR's box_ops). An empty union (two zero-area boxes) scores 0
    where the reference would give NaN.
    """
    pred = box_convert(box_pred.float(), in_fmt="cxcywh", out_fmt="xyxy")  # (B, 4) x1 y1 x2 y2
    target = box_convert(box_target.float(), in_fmt="cxcywh", out_fmt="xyxy")
    lt = torch.max(pred[:, :2], target[:, :2])  # (B, 2)
    rb = torch.min(pred[:, 2:], target[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]  # (B,)
    union = box_area(pred) + box_area(target) - inter
    return torch.where(union != 0, inter / union, torch.zeros_like(union))


def no_box_match(box_pred: Tensor, box_target: Tensor) -> Tensor:
    """(B,) bool: HAMMER's rule (`box_ops.box_iou(test=True)`) that sets the IoU to 1.

    The target's x1 is exactly 0 (a no-box target is [0, 0, 0, 0]) and all four predicted corners (x1, y1,
    x2, y2) are below 1e-4.
    """
    pred = box_convert(box_pred.float(), in_fmt="cxcywh", out_fmt="xyxy")  # (B, 4)
    target = box_convert(box_target.float(), in_fmt="cxcywh", out_fmt="xyxy")
    return (target[:, 0] == 0) & (pred < NO_BOX_EPS).all(dim=-1)


def box_iou_protocol(box_pred: Tensor, box_target: Tensor) -> Tensor:
    """(B,) float32 IoU of each pair with the no-box rule: 1 where `no_box_match`, the plain IoU elsewhere.

    So a no-box target scores 0 against any other prediction, and a real box touching the left edge is
    scored normally unless the prediction is ~0.
    """
    iou = box_iou_pairs(box_pred, box_target)
    return torch.where(no_box_match(box_pred, box_target), torch.ones_like(iou), iou)


def token_counts(token_logits: Tensor, token_labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, L, 2) logits, (B, L) labels (1 fake, 0 real, -100 padding) -> TP, FP, FN over all real tokens."""
    pred = token_logits.float().argmax(dim=-1)  # (B, L), a tie goes to 0 (real)
    fake, real = token_labels == 1, token_labels == 0  # padding is neither
    tp = (fake & (pred == 1)).sum()
    fp = (real & (pred == 1)).sum()
    fn = (fake & (pred == 0)).sum()
    return tp, fp, fn


def safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den in float64, 0 where den is 0."""
    num, den = num.double(), den.double()
    return torch.where(den == 0, torch.zeros_like(den), num / den)


def precision_recall_f1(tp: Tensor, fp: Tensor, fn: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Micro P = TP/(TP+FP), R = TP/(TP+FN), F1 = 2PR/(P+R); each 0 where its denominator is 0.

    The reference divides by zero there (no predicted fake token, no fake token, or no true positive); 0 is
    sklearn's and torchmetrics' default `zero_division`.
    """
    precision, recall = safe_divide(tp, tp + fp), safe_divide(tp, tp + fn)
    return precision, recall, f1_score(precision, recall)
