"""AdamW and the two learning-rate recipes: the paper's (§4.1) and the official code's (HAMMER = ASAP).

Paper (`optim=paper`): AdamW, weight decay 0.02, one lr warmed up to 1e-4 over the first 1000 steps, then cosine
decay per step to 1e-6 (`warmup_cosine_schedule`); biases, norms, other 1-d parameters (temperature, delta),
position embeddings and [CLS] tokens are not decayed.
Official code (`optim=official`; HAMMER's and ASAP's train.py, optim/optim_factory.py `add_weight_lr_img`,
scheduler/cosine_lr.py): the image side at lr_img 1e-4, every other parameter at 2e-5 (`official_param_groups`),
weight decay 0.02 on every parameter, warm-up from 1e-6 raised every 100 iterations during epoch 0, then cosine
per epoch to 1e-6 (`official_lr`, `official_schedule`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

NO_DECAY_KEYWORDS = ("pos_embed", "position_embedding", "cls_token")  # matched anywhere in the name
# The official code's image side (optim_factory.add_weight_lr_img: visual_encoder, bbox_head, aggregator,
# cls_token_local, it_cross_attn, norm_layer_aggr, norm_layer_it_cross_atten), in our module names: E_v, the
# vision-biased block (cross-attention, aggregator, their norms and query) and the box head. Everything else
# (text encoders, projections, temperature, delta, binary / multi-label / token / IED / patch heads) is the rest.
OFFICIAL_IMAGE_SIDE = ("image_encoder", "vision_biased_encoder", "box_head")


def _no_weight_decay_names(module: nn.Module) -> set[str]:
    """Names a module opts out of decay (timm's `no_weight_decay()` convention)."""
    fn = getattr(module, "no_weight_decay", None)
    return set(fn()) if callable(fn) else set()


def use_weight_decay(name: str, param: nn.Parameter, skip: Iterable[str] = ()) -> bool:
    """False for 1-d/scalar params (biases, norms, tau, delta), position embeddings, [CLS] tokens, `skip`."""
    if param.ndim <= 1 or name.endswith(".bias") or name in skip:
        return False
    return not any(k in name for k in NO_DECAY_KEYWORDS)


def _matches(name: str, prefix: str) -> bool:
    """Prefix on a dotted boundary: 'visual_encoder' matches 'visual_encoder.x', not 'visual_encoder_m.x'."""
    return name == prefix or name.startswith(prefix + ".")


def _assign_groups(names: list[str], param_groups: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Parameter name -> the one group whose prefixes match it (the prefix-less group takes the rest)."""
    rest = [g for g, spec in param_groups.items() if not spec.get("prefixes")]
    if len(rest) != 1:
        raise ValueError(f"param_groups needs exactly one group without prefixes (the rest), got {rest}")
    assignment: dict[str, str] = {}
    for name in names:
        hits = [
            g for g, spec in param_groups.items() for p in spec.get("prefixes") or () if _matches(name, p)
        ]
        if len(set(hits)) > 1:
            raise ValueError(f"parameter {name!r} matches several groups: {sorted(set(hits))}")
        assignment[name] = hits[0] if hits else rest[0]
    for g, spec in param_groups.items():
        for p in spec.get("prefixes") or ():
            if not any(_matches(n, p) for n in names):
                warnings.warn(
                    f"param_groups[{g!r}]: prefix {p!r} matches no trainable parameter", stacklevel=3
                )
    return assignment


def build_optimizer(
    module: nn.Module,
    lr: float = 1e-4,
    weight_decay: float = 0.02,
    betas: tuple[float, float] = (0.9, 0.999),
    param_groups: Mapping[str, Mapping[str, Any]] | None = None,
    decay_all: bool = False,
) -> AdamW:
    """AdamW over the trainable parameters of `module`, each in exactly one group.

    param_groups (optional), e.g. the official code's (`official_param_groups`)
    {"image": {"prefixes": ["image_encoder", ...], "lr": 1e-4}, "rest": {"lr": 2e-5}}:
    one group has no prefixes and takes every other parameter; a group without "lr" uses `lr`. Each group is
    split into a decayed and a non-decayed part; optimizer groups carry "name" = "<group>/decay|no_decay".
    decay_all: decay every parameter, as the official code does (its two-group path drops the no-decay split).
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    spec = dict(param_groups) if param_groups else {"all": {}}
    assignment = _assign_groups([n for n, _ in named], spec)
    skip = _no_weight_decay_names(module)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in named:
        decay = decay_all or use_weight_decay(name, param, skip)
        groups.setdefault((assignment[name], decay), []).append(param)
    optim_groups = [
        {
            "name": f"{g}/{'decay' if decay else 'no_decay'}",
            "params": params,
            "lr": float(spec[g].get("lr", lr)),
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (g, decay), params in groups.items()
    ]
    return AdamW(optim_groups, lr=lr, betas=betas, weight_decay=weight_decay)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, floor: float) -> float:
    """lr / base lr at optimiser step `step`: (step+1)/warmup_steps during warm-up, then cosine to `floor`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_schedule(
    optimizer: Optimizer,
    *,
    warmup_steps: int,
    total_steps: int | None,
    min_lr: float,
) -> LambdaLR:
    """Linear warm-up to each group's base lr over warmup_steps, then cosine to the floor at total_steps.

    Step it once per optimiser step (Lightning: interval="step"). The floor of every group is
    base_lr * min_lr / main_lr, main_lr = the largest base lr, so the main group ends at exactly min_lr and
    the others keep their ratio to it (HAMMER's 2e-5 group ends at 2e-7). lr stays at the floor after
    total_steps. Step 0 runs at base_lr / warmup_steps (~0); step warmup_steps at base_lr.
    """
    if total_steps is None or total_steps <= 0:
        raise ValueError(f"warmup_cosine_schedule needs total_steps > 0, got {total_steps}")
    if warmup_steps < 0 or warmup_steps > total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    main_lr = max(g.get("initial_lr", g["lr"]) for g in optimizer.param_groups)
    floor = min_lr / main_lr
    return LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, floor))


def official_param_groups(module: nn.Module, image_lr: float, rest_lr: float) -> dict[str, dict[str, Any]]:
    """The official code's two groups: `OFFICIAL_IMAGE_SIDE` at image_lr (its lr_img), the rest at rest_lr."""
    prefixes = [p for p in OFFICIAL_IMAGE_SIDE if getattr(module, p, None) is not None]
    return {"image": {"prefixes": prefixes, "lr": image_lr}, "rest": {"lr": rest_lr}}


def official_lr(
    base_lr: float,
    step: int,
    steps_per_epoch: int,
    epochs: int,
    *,
    warmup_lr: float,
    warmup_stages: int,
    stage_steps: int,
    min_lr: float,
) -> float:
    """The lr of optimiser step `step` (0-based) in HAMMER's / ASAP's train.py, for a group with base lr `base_lr`.

    Their timm CosineLRScheduler (t_initial=epochs, warmup_t=warmup_stages, warmup_prefix, cycle_limit 1) starts
    every group at warmup_lr; in epoch 0 `scheduler.step(i // 100)` runs after iteration i when i % 100 == 0 and
    i <= 100 * warmup_stages, so iteration i trains at stage k = (i - 1) // 100 (0 for i = 0):
    warmup_lr + k (base_lr - warmup_lr) / warmup_stages, and base_lr from stage warmup_stages on (the warm-up
    ends with epoch 0 even if unfinished: DGM4's ~780 iterations reach stage 7). After epoch e the schedule
    steps to e + 1 + warmup_stages, so epoch e >= 1 trains at min_lr + (base_lr - min_lr)(1 + cos(pi e / epochs)) / 2
    and at min_lr from epoch `epochs` on. Every group shares warmup_lr and min_lr (no per-group ratio).
    """
    epoch, i = divmod(step, steps_per_epoch)
    if epoch == 0:
        stage = min(warmup_stages, max(0, (i - 1) // stage_steps))
        if stage < warmup_stages:
            return warmup_lr + stage * (base_lr - warmup_lr) / warmup_stages
        return base_lr  # the cosine at t = 0
    if epoch >= epochs:
        return min_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


def official_schedule(optimizer: Optimizer, steps_per_epoch: int, epochs: int, **shape: float) -> LambdaLR:
    """`official_lr` for every group of `optimizer`; step it once per optimiser step (Lightning interval="step").

    shape: `official_lr`'s warm-up and floor keywords (warmup_lr, warmup_stages, stage_steps, min_lr; their
    defaults are `asap.models.config.OptimConfig`'s).
    """
    if steps_per_epoch <= 0 or epochs <= 0:
        raise ValueError(
            f"the official schedule needs steps_per_epoch > 0 and epochs > 0, got {steps_per_epoch} and {epochs}"
        )
    factors = [
        partial(
            _official_factor,
            group.get("initial_lr", group["lr"]),
            steps_per_epoch=steps_per_epoch,
            epochs=epochs,
            **shape,
        )
        for group in optimizer.param_groups
    ]
    return LambdaLR(optimizer, factors)


def _official_factor(base_lr: float, step: int, **shape: Any) -> float:
    return official_lr(base_lr, step, **shape) / base_lr
