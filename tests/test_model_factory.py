"""The shared batch factory obeys docs/contracts.md; the ablation presets carry the contract keys."""

from __future__ import annotations

import pytest
import torch

from helpers import ABLATIONS, conf, make_batch


def test_factory_batch_obeys_the_contract() -> None:
    b = make_batch(B=6, L=10)
    B, L = b["input_ids"].shape
    N = (32 // 8) ** 2
    assert b["token_labels"].shape == (B, L - 1) and b["patch_labels"].shape == (B, N)
    assert torch.equal(b["token_labels"] != -100, b["attention_mask"][:, 1:].bool())
    assert torch.equal(b["binary_label"].bool(), b["multilabel"].bool().any(dim=1))
    assert torch.equal(b["has_box"], b["multilabel"][:, :2].bool().any(dim=1))
    assert (b["patch_labels"][~b["has_box"]] == -1).all() and (b["patch_labels"][b["has_box"]] == 1).any(
        dim=1
    ).all()
    assert (b["box"][~b["has_box"]] == 0).all()


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_presets_have_the_contract_keys(name: str) -> None:
    assert set(conf("ablation", name)) == {"caption", "explanation", "ied", "mgca", "pmm", "hnp", "modality"}
