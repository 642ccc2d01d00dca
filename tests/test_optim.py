"""AdamW parameter groups (decay / no-decay, HAMMER's image vs rest lr) and the warm-up + cosine schedule."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from asap.models.optim import build_optimizer, warmup_cosine_schedule


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.visual_encoder = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.visual_encoder_m = nn.Linear(4, 4)  # must not match the prefix "visual_encoder"
        self.bbox_head = nn.Linear(4, 4)
        self.text_encoder = nn.Embedding(10, 4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.temp = nn.Parameter(torch.tensor(0.07))
        self.delta = nn.Parameter(torch.tensor(0.5))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


HAMMER_GROUPS = {
    "image": {"prefixes": ["visual_encoder", "bbox_head", "pos_embed"], "lr": 1e-4},
    "rest": {"lr": 2e-5},
}


def groups_by_name(opt: torch.optim.Optimizer) -> dict[str, dict]:
    return {g["name"]: g for g in opt.param_groups}


def names_in(opt: torch.optim.Optimizer, model: nn.Module, group: str) -> set[str]:
    ids = {id(p) for p in groups_by_name(opt)[group]["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_every_trainable_parameter_in_exactly_one_group() -> None:
    model = Tiny()
    opt = build_optimizer(model, param_groups=HAMMER_GROUPS)
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)) and set(seen) == trainable  # frozen ones left out


def test_weight_decay_split() -> None:
    model = Tiny()
    opt = build_optimizer(model, weight_decay=0.02)
    g = groups_by_name(opt)
    assert set(g) == {"all/decay", "all/no_decay"}
    assert g["all/decay"]["weight_decay"] == 0.02 and g["all/no_decay"]["weight_decay"] == 0.0
    assert names_in(opt, model, "all/decay") == {
        "visual_encoder.0.weight",
        "visual_encoder_m.weight",
        "bbox_head.weight",
        "text_encoder.weight",
    }
    assert {
        "pos_embed",
        "cls_token",
        "temp",
        "delta",
        "visual_encoder.1.weight",
        "visual_encoder.0.bias",
    } <= (names_in(opt, model, "all/no_decay"))
    assert all(grp["lr"] == 1e-4 for grp in opt.param_groups) and opt.defaults["betas"] == (0.9, 0.999)


def test_hammer_two_group_mode() -> None:
    model = Tiny()
    opt = build_optimizer(model, lr=1e-4, param_groups=HAMMER_GROUPS)
    g = groups_by_name(opt)
    assert g["image/decay"]["lr"] == g["image/no_decay"]["lr"] == 1e-4
    assert g["rest/decay"]["lr"] == g["rest/no_decay"]["lr"] == 2e-5
    assert names_in(opt, model, "image/decay") == {"visual_encoder.0.weight", "bbox_head.weight"}
    assert names_in(opt, model, "image/no_decay") == {
        "visual_encoder.0.bias",
        "visual_encoder.1.weight",
        "visual_encoder.1.bias",
        "bbox_head.bias",
        "pos_embed",
    }
    assert "visual_encoder_m.weight" in names_in(opt, model, "rest/decay")


def test_decay_really_applies_only_to_decayed_params() -> None:
    model = Tiny()
    opt = build_optimizer(model, lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam update is 0: only the decoupled decay moves weights
    opt.step()
    params = dict(model.named_parameters())
    torch.testing.assert_close(params["bbox_head.weight"], before["bbox_head.weight"] * (1 - 0.1 * 0.5))
    torch.testing.assert_close(params["temp"], before["temp"])
    torch.testing.assert_close(params["bbox_head.bias"], before["bbox_head.bias"])


def test_bad_group_specs() -> None:
    model = Tiny()
    with pytest.raises(ValueError, match="several groups"):
        build_optimizer(
            model,
            param_groups={"a": {"prefixes": ["bbox_head"]}, "b": {"prefixes": ["bbox_head"]}, "rest": {}},
        )
    with pytest.raises(ValueError, match="without prefixes"):
        build_optimizer(model, param_groups={"a": {"prefixes": ["bbox_head"]}})
    with pytest.warns(UserWarning, match="matches no"):
        build_optimizer(model, param_groups={"a": {"prefixes": ["no_such_module"]}, "rest": {}})


def lrs_over(total: int, warmup: int, steps: int) -> list[list[float]]:
    model = Tiny()
    opt = build_optimizer(model, lr=1e-4, param_groups=HAMMER_GROUPS)
    sched = warmup_cosine_schedule(opt, warmup_steps=warmup, total_steps=total, min_lr=1e-6)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps + 1):
            lrs.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
    return lrs


def test_schedule_key_points() -> None:
    warmup, total = 10, 110
    lrs = lrs_over(total, warmup, total + 5)
    image = [lr[0] for lr in lrs]  # group 0 is image/decay (lr 1e-4)
    rest = [lr[-1] for lr in lrs]  # last group is rest/no_decay (lr 2e-5)
    assert image[0] == pytest.approx(1e-5) and rest[0] == pytest.approx(2e-6)  # step 0: base / warmup
    assert image[warmup - 1] == pytest.approx(1e-4)  # linear ramp reaches base at the last warm-up step
    assert image[warmup] == pytest.approx(1e-4) and rest[warmup] == pytest.approx(2e-5)
    half = warmup + (total - warmup) // 2
    assert image[half] == pytest.approx((1e-4 + 1e-6) / 2)
    assert image[total] == pytest.approx(1e-6) and rest[total] == pytest.approx(
        2e-7
    )  # floor scaled per group
    assert image[total + 5] == pytest.approx(1e-6)  # stays at the floor
    assert all(a >= b for a, b in zip(image[warmup:], image[warmup + 1 :], strict=False))  # monotone decay
    quarter = warmup + (total - warmup) // 4
    floor = 1e-6
    assert image[quarter] == pytest.approx(floor + (1e-4 - floor) * 0.5 * (1 + math.cos(math.pi / 4)))


def test_schedule_without_warmup_and_bad_args() -> None:
    lrs = lrs_over(total=4, warmup=0, steps=4)
    assert lrs[0][0] == pytest.approx(1e-4) and lrs[4][0] == pytest.approx(1e-6)
    opt = build_optimizer(Tiny())
    with pytest.raises(ValueError):
        warmup_cosine_schedule(opt, warmup_steps=10)
    with pytest.raises(ValueError):
        warmup_cosine_schedule(opt, warmup_steps=20, total_steps=10)
