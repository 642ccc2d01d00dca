"""The training recipe around the model: the fused momentum EMA, one EMA update and one distillation ramp per
optimiser step under gradient accumulation (as one step on several devices), and the global batch."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn

from asap.errors import UserError
from asap.models import ASAPLitModule
from asap.models.momentum import MomentumModel
from asap.pipeline.global_batch import accumulation_steps, apply_global_batch, describe
from helpers import conf, make_batch, micro_model


def online_modules(dtype: torch.dtype) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "encoder": nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 3)).to(dtype),
        "head": nn.Linear(3, 2).to(dtype),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_ema_is_albefs_update(dtype: torch.dtype) -> None:
    """ALBEF's _momentum_update: param_m = param_m * m + param * (1 - m), for every parameter of every copy."""
    online = online_modules(dtype)
    momentum = MomentumModel(online, queues=["image"], embed_dim=4, queue_size=8, decay=0.995)
    with torch.no_grad():
        for module in online.values():  # the online weights move away from their copies
            for p in module.parameters():
                p.add_(torch.randn_like(p))
    expected = {
        (name, pname): p_m * 0.995 + p * (1 - 0.995)
        for name, module in online.items()
        for (pname, p_m), p in zip(momentum[name].named_parameters(), module.parameters(), strict=True)
    }
    momentum.update(online)
    for (name, pname), value in expected.items():
        torch.testing.assert_close(dict(momentum[name].named_parameters())[pname], value.detach())
    assert len(expected) == 8  # 3 + 1 layers, weight and bias each


def test_unread_parameters_are_not_averaged() -> None:
    """ASAP's momentum copy of the temperature is never read: the EMA leaves it (and only it) as it was copied."""
    online = online_modules(torch.float32)
    momentum = MomentumModel(online, ["image"], embed_dim=4, queue_size=8, decay=0.5, unread=["head.bias"])
    with torch.no_grad():
        for module in online.values():
            for p in module.parameters():
                p.add_(1.0)
    bias, weight = momentum["head"].bias.clone(), momentum["head"].weight.clone()
    momentum.update(online)
    torch.testing.assert_close(momentum["head"].bias, bias)
    torch.testing.assert_close(momentum["head"].weight, 0.5 * weight + 0.5 * online["head"].weight.detach())
    with pytest.raises(ValueError, match="head.scale"):
        MomentumModel(online, ["image"], embed_dim=4, queue_size=8, decay=0.5, unread=["head.scale"])


def test_holding_keeps_the_momentum_weights() -> None:
    online = online_modules(torch.float32)
    momentum = MomentumModel(online, queues=["image"], embed_dim=4, queue_size=8, decay=0.5)
    with torch.no_grad():
        online["head"].weight.add_(1.0)
    before = momentum["head"].weight.clone()
    with momentum.holding():
        momentum.update(online)
    torch.testing.assert_close(momentum["head"].weight, before)
    momentum.update(online)  # after the block: updates again
    torch.testing.assert_close(momentum["head"].weight, 0.5 * before + 0.5 * online["head"].weight.detach())


def momentum_run(accumulate: int, batches: int = 6, epochs: int = 1) -> dict[str, list[Any]]:
    """A Lightning fit of the micro model with momentum on; per training batch: whether the EMA update ran, the
    distillation weight, and the global step."""
    torch.manual_seed(0)
    module = ASAPLitModule(
        model=micro_model(momentum={"enabled": True, "queue_size": 12, "distill_alpha": 0.4}),
        loss=conf("loss", "default"),
        ablation=conf("ablation", "baseline"),
        optim={"lr": 1e-3, "warmup_steps": 1},
    )
    seen: dict[str, list[Any]] = {"updated": [], "weight": []}
    momentum, model_forward = module.model.momentum, module.model.forward
    update = momentum.update

    def spy_update(online: Any) -> None:
        seen["updated"].append(not momentum._holding)
        update(online)

    def spy_forward(batch: Any, **kwargs: Any) -> Any:
        seen["weight"].append(kwargs.get("distill_weight"))
        return model_forward(batch, **kwargs)

    momentum.update, module.model.forward = spy_update, spy_forward
    loader = torch.utils.data.DataLoader(
        [make_batch(B=4, L=8, seed=i) for i in range(batches)], batch_size=None
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        accumulate_grad_batches=accumulate,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    seen["global_step"] = [trainer.global_step]
    return seen


def test_one_ema_update_and_one_ramp_value_per_optimiser_step() -> None:
    """accumulation 3 over 6 batches: 2 optimiser steps; the EMA moves at the first batch of each window and
    alpha ramps by optimiser step (alpha * i / len in epoch 0, HAMMER's train.py), as 3 devices of one step do."""
    accumulated = momentum_run(accumulate=3)
    assert accumulated["global_step"] == [2]
    assert accumulated["updated"] == [True, False, False, True, False, False]
    assert accumulated["weight"] == pytest.approx([0, 0, 0, 0.2, 0.2, 0.2])
    plain = momentum_run(accumulate=1, batches=4, epochs=2)
    assert plain["updated"] == [True] * 8
    assert plain["weight"] == pytest.approx([0, 0.1, 0.2, 0.3] + [0.4] * 4)  # epoch 1: alpha


def test_global_batch_gives_the_accumulation_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    assert accumulation_steps(256, per_device=32, world_size=8) == 1
    assert accumulation_steps(256, per_device=32, world_size=1) == 8
    assert describe(256, 32, 1, 8) == "global batch 256 = 32 per device x 1 device x 8 accumulation steps"
    assert describe(256, 32, 8, 1) == "global batch 256 = 32 per device x 8 devices x 1 accumulation step"
    with pytest.raises(
        UserError, match=r"global_batch_size=256 is not a multiple of data.batch_size=32 x 3 devices"
    ):
        accumulation_steps(256, per_device=32, world_size=3)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    with caplog.at_level(logging.INFO, logger="asap.pipeline.global_batch"):
        apply_global_batch(trainer, 256, per_device=32)
    assert trainer.accumulate_grad_batches == 8
    assert "global batch 256 = 32 per device x 1 device x 8 accumulation steps" in caplog.text
    apply_global_batch(trainer, None, per_device=32)  # null: as configured
    assert trainer.accumulate_grad_batches == 8
    other = L.Trainer(accelerator="cpu", devices=1, accumulate_grad_batches=2, logger=False)
    with pytest.raises(UserError, match="contradicts"):
        apply_global_batch(other, 256, per_device=32)
