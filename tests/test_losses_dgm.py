"""DGM4 task losses (supplementary §6 / HAMMER) and the total objective (eq. 13)."""

from __future__ import annotations

import math

import pytest
import torch

from asap.losses import (
    TERM_NAMES,
    LossWeights,
    binary_loss,
    box_loss,
    multilabel_loss,
    token_loss,
    total_loss,
    weighted_terms,
)

LOG1P_E2 = math.log1p(math.exp(2))


def test_binary_loss_hand_value() -> None:
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]], requires_grad=True)
    loss = binary_loss(logits, torch.tensor([1, 0]))
    assert loss.item() == pytest.approx((math.log(2) + math.log1p(math.exp(-2))) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 1] < 0


def test_multilabel_loss_hand_value() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    expected = (7 * math.log(2) + LOG1P_E2) / 8  # logit 2 with label 0
    assert multilabel_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


# sample 0: perfect box; sample 1: shifted half a width right (IoU 1/3, enclosing = union); 2: no box
BOX_TARGET = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.25, 0.25, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
BOX_PRED = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.25, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5]])


def test_box_loss_only_boxed_samples_count() -> None:
    pred = BOX_PRED.clone().requires_grad_(True)
    l1, giou = box_loss(pred, BOX_TARGET, torch.tensor([True, True, False]))
    assert l1.item() == pytest.approx((0.0 + 0.05) / 2, rel=1e-5)  # L1 summed over coords, / 2 boxes
    assert giou.item() == pytest.approx((0.0 + 2 / 3) / 2, rel=1e-5)
    (l1 + giou).backward()
    assert pred.grad is not None and torch.all(pred.grad[2] == 0) and pred.grad[1, 0] > 0


def test_box_loss_all_samples_like_hammer_training_call() -> None:
    l1, giou = box_loss(BOX_PRED, BOX_TARGET, None)
    assert l1.item() == pytest.approx((0.05 + 2.0) / 3, rel=1e-5)
    # no-box sample: pred [0.25, 0.75]^2 vs the point (0, 0): IoU 0, enclosing 0.75^2, union 0.25
    giou_nobox = 1 + (0.5625 - 0.25) / 0.5625
    assert giou.item() == pytest.approx((2 / 3 + giou_nobox) / 3, rel=1e-5)


def test_box_loss_no_box_in_batch_is_zero() -> None:
    pred = BOX_PRED.clone().requires_grad_(True)
    l1, giou = box_loss(pred, BOX_TARGET, torch.zeros(3, dtype=torch.bool))
    assert l1.item() == 0.0 and giou.item() == 0.0
    (l1 + giou).backward()
    assert pred.grad is not None and torch.equal(pred.grad, torch.zeros(3, 4))


def test_box_loss_degenerate_predictions_stay_finite() -> None:
    pred = torch.tensor(
        [[0.5, 0.5, 0.0, 0.0], [0.5, 0.5, -0.1, 0.2], [0.0, 0.0, 0.0, 0.0]], requires_grad=True
    )
    l1, giou = box_loss(pred, BOX_TARGET, None)
    assert torch.isfinite(l1) and torch.isfinite(giou)
    (l1 + giou).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_box_loss_bf16() -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        l1, giou = box_loss(BOX_PRED.bfloat16(), BOX_TARGET.bfloat16(), torch.tensor([True, True, False]))
    assert l1.dtype == giou.dtype == torch.float32
    assert giou.item() == pytest.approx(1 / 3, rel=2e-2)


TOKEN_LOGITS = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [50.0, -50.0]], [[0.0, 3.0], [1.0, 1.0], [0.0, 0.0]]])
TOKEN_LABELS = torch.tensor([[0, 1, -100], [-100, -100, -100]])
CE = (math.log(2) + LOG1P_E2) / 2  # two real tokens: label 0 at [0, 0], label 1 at [2, 0]


def test_token_loss_ignores_padding() -> None:
    logits = TOKEN_LOGITS.clone().requires_grad_(True)
    loss = token_loss(logits, TOKEN_LABELS)
    assert loss.item() == pytest.approx(CE, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad[1] == 0) and torch.all(logits.grad[0, 2] == 0)


def test_token_loss_distillation_hand_value() -> None:
    soft = torch.full((2, 3, 2), 0.5)
    loss = token_loss(TOKEN_LOGITS, TOKEN_LABELS, soft_targets=soft, distill_weight=0.4)
    # -sum 0.5 * log_softmax: log 2 for [0, 0]; 1 + log(1 + e^-2) for [2, 0]; mean over the 2 real tokens
    distill = (math.log(2) + 1 + math.log1p(math.exp(-2))) / 2
    assert loss.item() == pytest.approx(0.6 * CE + 0.4 * distill, rel=1e-6)
    one_hot = torch.nn.functional.one_hot(TOKEN_LABELS.clamp(min=0), 2).float()
    assert token_loss(TOKEN_LOGITS, TOKEN_LABELS, one_hot).item() == pytest.approx(CE, rel=1e-6)


def test_token_loss_all_padding_is_zero() -> None:
    logits = TOKEN_LOGITS.clone().requires_grad_(True)
    labels = torch.full((2, 3), -100)
    loss = token_loss(logits, labels, soft_targets=torch.full((2, 3, 2), 0.5))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros(2, 3, 2))


def test_token_loss_bf16() -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = token_loss(TOKEN_LOGITS.bfloat16(), TOKEN_LABELS)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(CE, rel=1e-2)


ALL_TERMS = {name: torch.tensor(float(i + 1)) for i, name in enumerate(TERM_NAMES)}


def test_loss_weights_defaults_are_hammer_and_asap() -> None:
    w = LossWeights()
    assert (w.bic, w.mlc, w.bbox, w.giou, w.tmg, w.itc) == (1.0, 1.0, 0.1, 0.1, 1.0, 0.1)
    assert (w.lma, w.alpha, w.lambda_) == (1.0, 0.1, 0.01)
    assert LossWeights(**{"alpha": 0.5}).alpha == 0.5


def test_total_loss_eq13() -> None:
    # bic 1, mlc 2, bbox 3, giou 4, tmg 5, itc 6, vlc 7, ied 8, mgca 9, pmm 10; official mode's mac 11 (under
    # itc's weight, HAMMER's loss_MAC_wgt) and aux_vlc 12 (under lma)
    expected = 1 + 2 + 0.1 * 3 + 0.1 * 4 + 5 + 0.1 * 6 + (7 + 8) + 0.1 * 9 + 0.01 * 10 + 0.1 * 11 + 12
    assert total_loss(ALL_TERMS, LossWeights()).item() == pytest.approx(expected, rel=1e-6)
    w = LossWeights(lma=0.5, alpha=1.0, lambda_=0.0)
    assert total_loss(
        {"vlc": ALL_TERMS["vlc"], "mgca": ALL_TERMS["mgca"], "pmm": ALL_TERMS["pmm"]}, w
    ).item() == (pytest.approx(0.5 * 7 + 9))


def test_total_loss_skips_absent_and_rejects_unknown() -> None:
    terms = {"bic": torch.tensor(2.0), "bbox": torch.tensor(1.0, requires_grad=True)}
    loss = total_loss(terms, LossWeights())
    assert loss.item() == pytest.approx(2.1)
    loss.backward()
    assert terms["bbox"].grad is not None and terms["bbox"].grad.item() == pytest.approx(0.1)
    with pytest.raises(KeyError):
        total_loss({"bic": torch.tensor(1.0), "loss_MAC": torch.tensor(1.0)}, LossWeights())
    with pytest.raises(ValueError):
        total_loss({}, LossWeights())
    assert weighted_terms({"pmm": torch.tensor(3.0)}, LossWeights())["pmm"].item() == pytest.approx(0.03)
