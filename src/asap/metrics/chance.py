"""Chance levels of the box columns: the best constant box, the prior-only predictor of image grounding.

A model that has learnt nothing about the image can still output the box that fits the training split's boxes
best; its score on the evaluated split is the chance level of the boxed IoU columns (as the base rate is for AP).
The best box depends on the criterion (mean IoU or IoU > 0.5), so each has its own.

    python -m asap.metrics.chance data/synthetic          # fitted on train, scored on val and test
    python -m asap.metrics.chance data/synthetic --score test --predictions logs/smoke/runs/<time>/predictions_test.npz

With --predictions (a run's saved predictions on the scored split) it also prints, per criterion, the model's
score minus the constant box's, with a paired bootstrap 95 % interval over the boxed pairs: is the box above
chance?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou

from asap.data.records import box_fits, load_split, protocol_box, record_ref
from asap.data.validate import image_size
from asap.errors import DGM4DataError
from asap.metrics.functional import box_iou_pairs

CRITERIA = ("mean_iou", "iou50")


def per_pair(iou: Tensor, criterion: str) -> Tensor:
    """What `criterion` averages over the pairs: the IoU itself, or 1 where IoU > 0.5 (as the metric)."""
    return iou if criterion == "mean_iou" else (iou > 0.5).float()


def _score(iou: Tensor, criterion: str) -> Tensor:
    """iou (K, M) of K candidate boxes against M targets -> (K,) the criterion.

    IoU50 counts IoU > 0.5, as the metric; its ties are broken by the mean IoU, which weighs less than one pair.
    """
    score = per_pair(iou, criterion).mean(dim=1)
    return score if criterion == "mean_iou" else score + iou.mean(dim=1) / iou.shape[1]


def best_constant_box(
    targets: Tensor, criterion: str = "mean_iou", steps: int = 26, rounds: int = 4
) -> tuple[Tensor, float]:
    """The box (4,) x1 y1 x2 y2 that maximises `criterion` over targets (M, 4) (same units), and its score.

    Coarse-to-fine grid search over the corners (the criteria are not differentiable; IoU50 is piecewise
    constant): `steps` values per corner between the smallest and the largest target coordinate, then `rounds` - 1
    zooms around the best so far.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if targets.ndim != 2 or targets.shape[1] != 4 or len(targets) == 0:
        raise ValueError(f"targets must be (M, 4) with M > 0, got {tuple(targets.shape)}")
    targets = targets.float()
    lo, hi = targets.min().expand(4).clone(), targets.max().expand(4).clone()  # (4,) each
    best, best_score = targets[0], -1.0
    for _ in range(rounds):
        axes = [torch.linspace(float(a), float(b), steps) for a, b in zip(lo, hi, strict=True)]
        boxes = torch.cartesian_prod(*axes)  # (K, 4)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        chunk = max(1, 2**24 // len(targets))  # candidates per (chunk, M) IoU matrix: ~64 MB
        scores = torch.cat([_score(box_iou(part, targets), criterion) for part in boxes.split(chunk)])
        i = int(scores.argmax())
        if float(scores[i]) > best_score:
            best, best_score = boxes[i], float(scores[i])
        span = 3 * (hi - lo) / (steps - 1)
        lo, hi = torch.maximum(best - span, lo), torch.minimum(best + span, hi)
        steps = 13
    return best, best_score


def constant_box_scores(box: Tensor, targets: Tensor) -> dict[str, float]:
    """Mean IoU and IoU50 (percent) of one box (4,) against targets (M, 4), all x1 y1 x2 y2."""
    iou = box_iou(box[None].float(), targets.float())[0]  # (M,)
    return {c: 100 * float(per_pair(iou, c).mean()) for c in CRITERIA}


def paired_bootstrap(
    model: Tensor, constant: Tensor, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of model - constant (both (M,), one value per boxed pair) and its 95 % bootstrap interval, percent."""
    diff = (model - constant).double()  # (M,)
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, 2**22 // len(diff))  # resamples drawn at once: ~4M indices
    means = torch.cat([
        diff[torch.randint(len(diff), (min(chunk, resamples - i), len(diff)), generator=generator)].mean(dim=1)
        for i in range(0, resamples, chunk)
    ])  # (resamples,)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=means.dtype))
    return 100 * float(diff.mean()), 100 * float(low), 100 * float(high)


def model_vs_constant(predictions: dict, box: Tensor, criterion: str = "mean_iou") -> dict[str, float]:
    """A prediction file's boxed pairs: the model's mean IoU and IoU50, and its paired gain over `box` (x1 y1 x2 y2)
    on `criterion`."""
    target = torch.as_tensor(predictions["box_target"]).float()  # (B, 4) cx cy w h; no box = zeros
    boxed = target.abs().sum(dim=1) > 0  # (B,)
    if not boxed.any():
        raise ValueError("the predictions hold no pair with a manipulated-face box")
    pred = torch.as_tensor(predictions["box_pred"]).float()[boxed]  # (M, 4)
    model_iou = box_iou_pairs(pred, target[boxed])  # (M,)
    constant = box_convert(box.float(), "xyxy", "cxcywh")[None].expand_as(pred)
    constant_iou = box_iou_pairs(constant, target[boxed])  # (M,)
    gain, low, high = paired_bootstrap(per_pair(model_iou, criterion), per_pair(constant_iou, criterion))
    return {
        **{c: 100 * float(per_pair(model_iou, c).mean()) for c in CRITERIA},
        "gain": gain,
        "low": low,
        "high": high,
    }


def split_boxes(root: str | Path, split_file: str) -> Tensor:
    """(M, 4) the manipulated-face boxes of a DGM4 split (the protocol's integer boxes, as the data module reads
    them), x1 y1 x2 y2 divided by each image's width and height."""
    root = Path(root)
    boxes = []
    for index, record in enumerate(load_split(root / split_file)):
        box = protocol_box(record.get("fake_image_box") or [])
        if box is None:
            continue
        try:
            w, h = image_size(root / record["image"])  # the header only
        except (OSError, ValueError) as err:
            raise DGM4DataError(f"{root / split_file}: record {record_ref(record, index)}: {err}") from err
        if not box_fits(box, w, h):
            raise DGM4DataError(
                f"{root / split_file}: record {record_ref(record, index)}: fake_image_box "
                f"{record['fake_image_box']} does not fit the {w}x{h} image"
            )
        x, y, bw, bh = box
        boxes.append([x / w, y / h, (x + bw) / w, (y + bh) / h])
    if not boxes:
        raise ValueError(f"{root / split_file}: no record has a manipulated-face box")
    return torch.tensor(boxes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="the folder that holds DGM4/ (data.root)")
    parser.add_argument("--fit", default="train", help="split fitted on (DGM4/metadata/<split>.json)")
    parser.add_argument("--score", nargs="+", default=["val", "test"], help="splits scored")
    parser.add_argument("--predictions", help="a run's predictions_<split>.npz on the (single) scored split")
    args = parser.parse_args(argv)
    from asap.metrics.predictions import load_predictions
    from asap.utils.console import console

    if args.predictions and len(args.score) != 1:
        parser.error("--predictions needs exactly one --score split (the one the predictions are on)")

    fit = split_boxes(args.root, f"DGM4/metadata/{args.fit}.json")
    scored = {s: split_boxes(args.root, f"DGM4/metadata/{s}.json") for s in args.score}
    for criterion in CRITERIA:
        box, _ = best_constant_box(fit, criterion)
        corners = ", ".join(f"{float(v):.3f}" for v in box)
        console.print(f"best constant box for {criterion} on {args.fit} ({len(fit)} boxes): [{corners}]")
        for split, targets in scored.items():
            s = constant_box_scores(box, targets)
            console.print(
                f"  {split} ({len(targets)} boxes): mean IoU {s['mean_iou']:.1f}, IoU50 {s['iou50']:.1f} "
                "(boxed columns)"
            )
        if args.predictions:
            r = model_vs_constant(load_predictions(args.predictions), box, criterion)
            console.print(
                f"  model: mean IoU {r['mean_iou']:.1f}, IoU50 {r['iou50']:.1f}; {criterion} minus this box's "
                f"{r['gain']:+.1f}, 95 % interval [{r['low']:+.1f}, {r['high']:+.1f}] (paired bootstrap)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
