"""MGCA (eq. 8-9, official variant) and PMM (eq. 10-12): hand-made boxes, tokens and padding."""

from __future__ import annotations

import math

import pytest
import torch

from asap.losses import guidance_mask, mgca_loss, mgca_official_loss, pmm_loss, pmm_targets

# sample 0: token 1 manipulated, token 2 padding, patch 0 in the box; sample 1: real, no box
TOKENS = torch.tensor([[0, 1, -100], [0, 0, 0]])  # (B=2, Lt=3)
PATCHES = torch.tensor([[1, 0, -1, -1], [-1, -1, -1, -1]])  # (B=2, N=4)
N_VALID = 2 * 4 + 3 * 4  # |A|: real tokens x patches


def test_guidance_mask_hand_made() -> None:
    G, valid = guidance_mask(TOKENS, PATCHES)
    expected0 = torch.tensor([[1.0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])  # row: token, column: patch
    torch.testing.assert_close(G[0], expected0)
    torch.testing.assert_close(G[1], torch.zeros(3, 4))  # per sample: sample 0's fake token does not leak
    assert valid.dtype == torch.bool and valid.shape == (2, 3, 4)
    assert valid[0, :2].all() and not valid[0, 2].any() and valid[1].all()
    assert int(valid.sum()) == N_VALID


def test_adjacent_ring_is_not_guidance() -> None:
    G, _ = guidance_mask(torch.tensor([[0]]), torch.tensor([[1, 0, -1]]))  # 0 = HNP ring: not manipulated
    torch.testing.assert_close(G[0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_mgca_loss_uniform_attention() -> None:
    G, valid = guidance_mask(TOKENS, PATCHES)
    attention = torch.full((2, 3, 4), 0.25, requires_grad=True)
    loss = mgca_loss(attention, G, valid)
    assert loss.item() == pytest.approx(5 * math.log(4) / N_VALID, rel=1e-6)  # five G=1 valid cells
    loss.backward()
    assert attention.grad is not None
    assert attention.grad[0, 0, 0] < 0 and attention.grad[0, 0, 1] == 0  # more attention on the box patch
    assert torch.all(attention.grad[0, 2] == 0)  # padding row ignored


def test_mgca_loss_padding_with_zero_attention_and_heads() -> None:
    G, valid = guidance_mask(TOKENS, PATCHES)
    attention = torch.full((2, 2, 3, 4), 0.25)  # (B, H, Lt, N)
    attention[0, :, 2] = 0.0  # padding row: log 0 must not leak
    attention[0, 0, 0] = torch.tensor([0.7, 0.1, 0.1, 0.1])
    attention[0, 1, 0] = torch.tensor([0.3, 0.3, 0.2, 0.2])  # head mean of row (0, 0): [0.5, 0.2, 0.15, 0.15]
    loss = mgca_loss(attention, G, valid)
    expected = (-math.log(0.5) + 4 * math.log(4)) / N_VALID
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_mgca_loss_zero_attention_is_clamped() -> None:
    G, valid = guidance_mask(TOKENS, PATCHES)
    attention = torch.zeros(2, 3, 4, requires_grad=True)
    loss = mgca_loss(attention, G, valid)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(5 * -math.log(1e-8) / N_VALID, rel=1e-5)
    loss.backward()
    assert attention.grad is not None and torch.isfinite(attention.grad).all()


def test_mgca_empty_selection_is_graph_connected_zero() -> None:
    G, valid = guidance_mask(torch.full((2, 3), -100), PATCHES)
    attention = torch.full((2, 3, 4), 0.25, requires_grad=True)
    scores = torch.zeros(2, 3, 4, requires_grad=True)
    for loss, leaf in (
        (mgca_loss(attention, G, valid), attention),
        (mgca_official_loss(scores, G, valid), scores),
    ):
        assert loss.item() == 0.0
        loss.backward()
        assert leaf.grad is not None and torch.equal(leaf.grad, torch.zeros_like(leaf.grad))


def test_mgca_official_loss_hand_value() -> None:
    G, valid = guidance_mask(TOKENS, PATCHES)
    scores = torch.zeros(2, 2, 3, 4)  # (B, H, Lt, N)
    scores[0, :, 1, 0] = 2.0  # manipulated token on the box patch (G = 1), both heads
    scores[0, :, 2] = 50.0  # padding: excluded (would add ~50 each)
    loss = mgca_official_loss(scores, G, valid)
    expected = ((N_VALID - 1) * math.log(2) + math.log1p(math.exp(-2))) / N_VALID
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_mgca_bf16() -> None:
    G, valid = guidance_mask(TOKENS, PATCHES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mgca_loss(torch.full((2, 3, 4), 0.25, dtype=torch.bfloat16), G, valid)
        official = mgca_official_loss(torch.zeros(2, 3, 4, dtype=torch.bfloat16), G, valid)
    assert loss.dtype == official.dtype == torch.float32
    assert loss.item() == pytest.approx(5 * math.log(4) / N_VALID, rel=1e-3)


PMM_LABELS = torch.tensor([[1, 0, -1, -1], [1, -1, -1, -1], [1, 1, 0, -1]])  # sample 1 inconsistent: no box
HAS_BOX = torch.tensor([True, False, True])


def test_pmm_targets_with_and_without_hnp() -> None:
    hnp = pmm_targets(PMM_LABELS, HAS_BOX, hnp=True)
    torch.testing.assert_close(hnp, torch.tensor([[1, 0, -1, -1], [-1, -1, -1, -1], [1, 1, 0, -1]]))
    plain = pmm_targets(PMM_LABELS, HAS_BOX, hnp=False)
    torch.testing.assert_close(plain, torch.tensor([[1, 0, 0, 0], [-1, -1, -1, -1], [1, 1, 0, 0]]))
    assert hnp.dtype == plain.dtype == torch.long


def test_pmm_loss_drops_ignored_patches() -> None:
    targets = pmm_targets(PMM_LABELS, HAS_BOX)
    logits = torch.tensor([[2.0, 2.0, 9.0, 9.0], [9.0] * 4, [0.0, 0.0, 0.0, 9.0]], requires_grad=True)
    loss = pmm_loss(logits, targets)
    # N' = 5: bce(2, 1), bce(2, 0), three log 2; the 9.0 logits are ignored (not even log 2 each)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(2)) + 3 * math.log(2)) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad is not None
    assert (
        logits.grad[0, 0] < 0 < logits.grad[0, 1]
        and torch.all(logits.grad[1] == 0)
        and logits.grad[2, 3] == 0
    )


def test_pmm_loss_without_hnp_counts_all_negatives() -> None:
    targets = pmm_targets(PMM_LABELS, HAS_BOX, hnp=False)
    loss = pmm_loss(torch.zeros(3, 4, 1), targets)  # (B, N, 1) logits accepted
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_pmm_loss_no_labelled_patch_is_zero() -> None:
    logits = torch.randn(2, 4, requires_grad=True)
    loss = pmm_loss(logits, pmm_targets(PMM_LABELS[:2], torch.tensor([False, False])))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros(2, 4))


def test_pmm_bf16() -> None:
    targets = pmm_targets(PMM_LABELS, HAS_BOX)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = pmm_loss(torch.zeros(3, 4, dtype=torch.bfloat16), targets)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(math.log(2), rel=1e-6)
