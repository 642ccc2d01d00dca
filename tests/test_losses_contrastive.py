"""LMA contrastive terms (eq. 1-3) and IED (eq. 4-5): hand-computed values on 2-sample batches."""

from __future__ import annotations

import math

import pytest
import torch

from asap.losses import contrastive_terms, ied_loss, momentum_targets, vlc_loss

L2 = math.log(1 + math.exp(-2))  # -log softmax([2, 0])[0]: one row of identity features at tau = 0.5


def feats(requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    image = torch.eye(2).requires_grad_(requires_grad)
    text = torch.eye(2).requires_grad_(requires_grad)
    return image, text, torch.tensor(0.5, requires_grad=requires_grad)


def test_identity_features_hand_value() -> None:
    image, text, tau = feats()
    i2t, t2i = contrastive_terms(image, text, tau)
    assert i2t.item() == pytest.approx(L2, rel=1e-6)
    assert t2i.item() == pytest.approx(L2, rel=1e-6)


def test_temperature_is_clamped() -> None:
    image, text, _ = feats()
    high, _ = contrastive_terms(image, text, torch.tensor(3.0))  # -> 0.5
    assert high.item() == pytest.approx(L2, rel=1e-6)
    low, _ = contrastive_terms(image, text, torch.tensor(1e-6))  # -> 0.001: logits 1000 vs 0
    assert low.item() == pytest.approx(math.log1p(math.exp(-1000.0)), abs=1e-6)
    assert torch.isfinite(low)


def test_anchor_mask_anchors_vs_batch_reduction() -> None:
    image, _, tau = feats()
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    row0 = math.log1p(math.exp(-0.8))  # logits [2, 1.2], positive 2
    row1 = math.log1p(math.exp(-1.6))  # logits [0, 1.6], positive 1.6
    mask = torch.tensor([True, False])
    i2t, _ = contrastive_terms(image, text, tau, mask)
    assert i2t.item() == pytest.approx(row0, rel=1e-6)  # only row 0 counts (mean over 1 anchor)
    i2t_all, _ = contrastive_terms(image, text, tau)
    assert i2t_all.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    i2t_b, _ = contrastive_terms(image, text, tau, mask, reduction="batch")
    assert i2t_b.item() == pytest.approx(row0 / 2, rel=1e-6)  # HAMMER: zero target for the fake row, / B


def test_fake_pairs_stay_negatives() -> None:
    """A masked-out (fake) sample still sits in the denominator of the real rows."""
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # fake text 1 equals real text 0
    i2t, _ = contrastive_terms(image, text, torch.tensor(0.5), torch.tensor([True, False]))
    assert i2t.item() == pytest.approx(math.log(2), rel=1e-6)  # logits [2, 2]


def test_queue_adds_negatives() -> None:
    image, text, tau = feats()
    queue = torch.tensor([[1.0, 0.0]])  # (K=1, D)
    i2t, t2i = contrastive_terms(image, text, tau, text_queue=queue, image_queue=queue)
    row0 = -math.log(math.exp(2) / (2 * math.exp(2) + 1))  # logits [2, 0, 2]
    row1 = -math.log(math.exp(2) / (math.exp(2) + 2))  # logits [0, 2, 0]
    assert i2t.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert t2i.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_momentum_keys_replace_in_batch_keys() -> None:
    image, text, tau = feats()
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    i2t, t2i = contrastive_terms(image, text, tau, text_keys=swapped)
    assert i2t.item() == pytest.approx(math.log1p(math.exp(2)), rel=1e-6)  # positive logit 0, negative 2
    assert t2i.item() == pytest.approx(L2, rel=1e-6)  # image keys untouched


def test_soft_targets_distillation_hand_value() -> None:
    image, text, tau = feats()
    uniform = torch.full((2, 2), 0.5)
    i2t, _ = contrastive_terms(image, text, tau, soft_targets=(uniform, uniform), distill_alpha=0.4)
    assert i2t.item() == pytest.approx(L2 + 0.2 * 2, rel=1e-6)  # target [0.8, 0.2]
    mask = torch.tensor([True, False])
    i2t_b, _ = contrastive_terms(image, text, tau, mask, soft_targets=(uniform, uniform), reduction="batch")
    row1 = 0.2 * (2 + L2) + 0.2 * L2  # fake row keeps alpha * soft = [0.2, 0.2] (HAMMER)
    assert i2t_b.item() == pytest.approx((L2 + 0.4 + row1) / 2, rel=1e-6)


def test_momentum_targets() -> None:
    image, text, tau = feats()
    queue = torch.tensor([[1.0, 0.0]])
    i2t, t2i = momentum_targets(image, text, tau, image_queue=queue, text_queue=queue)
    assert i2t.shape == (2, 3) and not i2t.requires_grad
    torch.testing.assert_close(i2t[0], torch.softmax(torch.tensor([2.0, 0.0, 2.0]), 0))
    torch.testing.assert_close(t2i.sum(1), torch.ones(2))


@pytest.mark.parametrize("tau_value", [0.3, 0.5, 0.9])  # inside, at and above the upper bound
def test_gradients_flow_to_features_and_temperature(tau_value: float) -> None:
    image, text, _ = feats(requires_grad=True)
    tau = torch.tensor(tau_value, requires_grad=True)
    i2t, t2i = contrastive_terms(image, text, tau)
    (i2t + t2i).backward()
    for t in (image, text, tau):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert tau.grad is not None and tau.grad > 0  # larger tau -> softer logits -> larger loss here


def test_no_anchor_gives_graph_connected_zero() -> None:
    image, text, tau = feats(requires_grad=True)
    i2t, t2i = contrastive_terms(image, text, tau, torch.zeros(2, dtype=torch.bool))
    assert i2t.item() == 0.0 and t2i.item() == 0.0
    (i2t + t2i).backward()
    assert image.grad is not None and torch.equal(image.grad, torch.zeros(2, 2))


def test_bf16_autocast_computes_in_float32() -> None:
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    ref, _ = contrastive_terms(image, text, torch.tensor(0.07))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = contrastive_terms(image.bfloat16(), text.bfloat16(), torch.tensor(0.07))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=2e-2)


def test_bad_reduction_raises() -> None:
    image, text, tau = feats()
    with pytest.raises(ValueError):
        contrastive_terms(image, text, tau, reduction="mean")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("aux", "expected"),
    [
        ({}, 2.0),
        ({"i2c": 2.0, "c2i": 4.0}, 2.0 + 3.0),
        ({"i2e": 6.0, "e2i": 8.0}, 2.0 + 7.0),
        ({"i2c": 2.0, "c2i": 4.0, "i2e": 6.0, "e2i": 8.0}, 2.0 + 5.0),  # eq. 3: /2 + /4
    ],
)
def test_vlc_loss_forms(aux: dict[str, float], expected: float) -> None:
    terms = {k: torch.tensor(v) for k, v in aux.items()}
    assert vlc_loss(torch.tensor(1.0), torch.tensor(3.0), **terms).item() == pytest.approx(expected)


def test_vlc_loss_needs_both_directions() -> None:
    with pytest.raises(ValueError):
        vlc_loss(torch.tensor(1.0), torch.tensor(1.0), i2c=torch.tensor(1.0))


def test_ied_loss_hand_value_and_stability() -> None:
    logits = torch.tensor([0.0, 2.0], requires_grad=True)
    is_real = torch.tensor([True, False])
    loss = ied_loss(logits, is_real)  # -log sigmoid(0) and -log(1 - sigmoid(2))
    assert loss.item() == pytest.approx((math.log(2) + math.log1p(math.exp(2))) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad[0] < 0 < logits.grad[1]  # real up, fake down
    extreme = ied_loss(torch.tensor([[100.0], [-100.0]]), torch.tensor([1, 1]))
    assert extreme.item() == pytest.approx(50.0, rel=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ied_loss(torch.tensor([0.0, 2.0]).bfloat16(), is_real).dtype == torch.float32
    with pytest.raises(ValueError):
        ied_loss(torch.zeros(3), is_real)
