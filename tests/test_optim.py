"""AdamW parameter groups (decay / no-decay, the official image vs rest lr), the paper's and the official schedule."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from asap.models.optim import (
    build_optimizer,
    official_lr,
    official_param_groups,
    official_schedule,
    warmup_cosine_schedule,
)
from helpers import conf, micro_model


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


_OFFICIAL = conf("optim", "official")  # the official recipe's warm-up and floor (HAMMER's train.py: 1e-6, 10 x 100)
OFFICIAL_SHAPE = {
    "warmup_lr": _OFFICIAL["warmup_lr"],
    "warmup_stages": _OFFICIAL["warmup_stages"],
    "stage_steps": _OFFICIAL["warmup_stage_steps"],
    "min_lr": _OFFICIAL["min_lr"],
}
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
        warmup_cosine_schedule(opt, warmup_steps=10, total_steps=None, min_lr=1e-6)
    with pytest.raises(ValueError):
        warmup_cosine_schedule(opt, warmup_steps=20, total_steps=10, min_lr=1e-6)


# ---------------------------------------------------------------------------------------------------- official recipe


def hammer_loop_lrs(
    bases: list[float], steps_per_epoch: int, epochs: int, warmup_epochs: int = 10
) -> list[list[float]]:
    """The lr of every group at each iteration of HAMMER's / ASAP's train.py, driven as their code drives it.

    Their scheduler/cosine_lr.py is timm's CosineLRScheduler (create_scheduler: t_initial=epochs, lr_min=1e-6,
    warmup_lr_init=1e-6, warmup_t=warmup_epochs, cycle_limit 1, warm-up as a prefix); train() calls
    `scheduler.step(i // step_size)` after iteration i of epoch 0 when i % 100 == 0 and i <= warmup_epochs * 100,
    and main_worker `lr_scheduler.step(epoch + warmup_steps + 1)` after each epoch.
    """
    from timm.scheduler import CosineLRScheduler

    params = [nn.Parameter(torch.zeros(1)) for _ in bases]
    opt = torch.optim.AdamW([{"params": [p], "lr": b} for p, b in zip(params, bases, strict=True)])
    scheduler = CosineLRScheduler(
        opt,
        t_initial=epochs,
        lr_min=1e-6,
        warmup_lr_init=1e-6,
        warmup_t=warmup_epochs,
        warmup_prefix=True,
        cycle_limit=1,
    )
    step_size, lrs = 100, []
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            lrs.append([g["lr"] for g in opt.param_groups])  # the lr optimizer.step() uses at iteration i
            if epoch == 0 and i % step_size == 0 and i <= warmup_epochs * step_size:
                scheduler.step(i // step_size)
        scheduler.step(epoch + warmup_epochs + 1)
    return lrs


def official_schedule_lrs(bases: list[float], steps_per_epoch: int, epochs: int) -> list[list[float]]:
    """Ours: the lr of every group at each optimiser step of `official_schedule` (a LambdaLR stepped per step)."""
    params = [nn.Parameter(torch.zeros(1)) for _ in bases]
    opt = torch.optim.AdamW([{"params": [p], "lr": b} for p, b in zip(params, bases, strict=True)])
    scheduler = official_schedule(opt, steps_per_epoch=steps_per_epoch, epochs=epochs, **OFFICIAL_SHAPE)
    lrs = []
    for _ in range(steps_per_epoch * epochs):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "steps_per_epoch",
    [781, 1234, 60],
    ids=["dgm4-at-256: warm-up unfinished", "warm-up done in epoch 0", "tiny"],
)
def test_official_schedule_is_the_official_codes(steps_per_epoch: int) -> None:
    bases, epochs = [1e-4, 2e-5], 6
    ours = official_schedule_lrs(bases, steps_per_epoch, epochs)
    theirs = hammer_loop_lrs(bases, steps_per_epoch, epochs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


def test_official_schedule_key_points() -> None:
    """The formula at chosen steps: 1e-6 start, a stage every 100 steps, cosine per epoch, the same floor for all."""
    shape = dict(steps_per_epoch=781, epochs=50, **OFFICIAL_SHAPE)
    assert official_lr(1e-4, 0, **shape) == official_lr(1e-4, 100, **shape) == pytest.approx(1e-6)
    assert official_lr(1e-4, 101, **shape) == pytest.approx(1e-6 + (1e-4 - 1e-6) / 10)
    stage_7 = 1e-6 + 7 * (2e-5 - 1e-6) / 10  # the last iteration of epoch 0 (780 of 781)
    assert official_lr(2e-5, 780, **shape) == pytest.approx(stage_7)
    assert official_lr(1e-4, 1100, steps_per_epoch=2000, epochs=50, **OFFICIAL_SHAPE) == pytest.approx(1e-4)  # all 10 stages
    for epoch in (1, 25, 49):
        cosine = 0.5 * (1 + math.cos(math.pi * epoch / 50))
        for base in (1e-4, 2e-5):
            expected = 1e-6 + (base - 1e-6) * cosine  # the same for every step of the epoch
            assert official_lr(base, epoch * 781, **shape) == pytest.approx(expected)
            assert official_lr(base, epoch * 781 + 780, **shape) == pytest.approx(expected)
    # after the cycle: the floor, the same for every group
    assert official_lr(2e-5, 50 * 781, **shape) == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        official_schedule(build_optimizer(Tiny()), steps_per_epoch=0, epochs=50, **OFFICIAL_SHAPE)


def official_name(name: str) -> str:
    """The official code's name of the parameter that our parameter `name` stands for (ASAP.py / HAMMER.py)."""
    head, _, rest = name.partition(".")
    part = rest.partition(".")[0]
    if head in SUBPART_NAMES:
        return f"{SUBPART_NAMES[head][part]}.{rest}"
    return f"{OFFICIAL_NAMES[head]}.{rest}"


OFFICIAL_NAMES = {
    "image_encoder": "visual_encoder",
    "text_encoder": "text_encoder.bert",  # E_t: BERT's first layers
    "text_biased_encoder": "text_encoder.bert",  # E_mm^t: BERT's fusion layers
    "token_head": "text_encoder.cls",  # BertForTokenClassification's classifier
    "binary_head": "itm_head",
    "multilabel_head": "cls_head",
    "box_head": "bbox_head",
    "delta": "UtilsB",  # ASAP's learnable scalars on the heads' inputs
    "ied_head": "itm_head_m",
    "patch_head": "patch_head",
}
SUBPART_NAMES = {
    "vision_biased_encoder": {  # HAMMER's it_cross_attn + aggregator, their norms and query
        "cross_attention_norm": "norm_layer_it_cross_atten",
        "cross_attention": "it_cross_attn",
        "aggregator_norm": "norm_layer_aggr",
        "aggregator_query": "cls_token_local",
        "aggregator": "aggregator",
    },
    "alignment": {"vision_proj": "vision_proj", "text_proj": "text_proj", "temperature": "temp"},
}


def official_image_side(official: str) -> bool:
    """optim_factory.add_weight_lr_img: the substrings that put a parameter at lr_img."""
    return any(k in official for k in OFFICIAL_IMAGE_KEYS)


OFFICIAL_IMAGE_KEYS = (
    "visual_encoder",
    "bbox_head",
    "aggregator",
    "cls_token_local",
    "it_cross_attn",
    "norm_layer_aggr",
    "norm_layer_it_cross_atten",
)


def test_official_groups_of_every_parameter_of_the_full_model() -> None:
    from asap.models.asap import ASAPModel
    from asap.models.config import ASAPConfig

    config = ASAPConfig.from_plain(
        model=micro_model(momentum={"enabled": True, "queue_size": 8}),
        loss=conf("loss", "default"),
        ablation=conf("ablation", "full"),
        optim=conf("optim", "official"),
    )
    model = ASAPModel(config.model, config.loss, config.ablation)
    opt = build_optimizer(
        model,
        weight_decay=0.02,
        decay_all=True,
        param_groups=official_param_groups(model, image_lr=1e-4, rest_lr=2e-5),
    )
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(lr_of) == len(named) and not any(n.startswith("momentum.") for n, _ in named)
    for name, param in named:  # every parameter, by its official counterpart (a new part fails: a KeyError)
        expected = 1e-4 if official_image_side(official_name(name)) else 2e-5
        assert lr_of[id(param)] == expected, (name, official_name(name), lr_of[id(param)])
    for name, param in named:
        if param.ndim == 0:  # temperature, delta (the official scalars temp, UtilsB/UtilsC): the rest
            assert lr_of[id(param)] == 2e-5, name
    assert {g["weight_decay"] for g in opt.param_groups} == {0.02}  # decay_all: every parameter decayed
    image = {n.partition(".")[0] for n, p in named if lr_of[id(p)] == 1e-4}
    assert image == {"image_encoder", "vision_biased_encoder", "box_head"}  # patch head at 2e-5, as ASAP's


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"schedule": "linear"}, r"optim.schedule must be one of \('paper', 'official'\)"),
        (
            {"param_groups": "hammer", "rest_lr": 2e-5},
            "optim.param_groups must be null, 'official' or a mapping",
        ),
        ({"param_groups": "official"}, "optim.rest_lr .* goes with param_groups=official"),
        ({"rest_lr": 2e-5}, "optim.rest_lr .* goes with param_groups=official"),
    ],
)
def test_bad_optim_config_is_a_clear_error(optim: dict, message: str) -> None:
    from asap.errors import ConfigError
    from asap.models.config import ASAPConfig
    from helpers import conf, micro_model

    with pytest.raises(ConfigError, match=message):
        ASAPConfig.from_plain(micro_model(), conf("loss", "default"), conf("ablation", "full"), optim)
