"""AdamW with selective weight decay and the warm-up + cosine schedule of ASAP §4.1.

Paper: AdamW, weight decay 0.02, lr warmed up to 1e-4 over the first 1000 steps, then cosine decay to 1e-6.
HAMMER's two-group mode (optim/optim_factory.py add_weight_lr_img): the image side (visual encoder, box head,
aggregator, ...) at lr_img = 1e-4, the rest at 2e-5. HAMMER decays every parameter; here biases, norms, other
1-d parameters (temperature, delta), position embeddings and [CLS] tokens are not decayed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

NO_DECAY_KEYWORDS = ("pos_embed", "position_embedding", "cls_token")  # matched anywhere in the name


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
) -> AdamW:
    """AdamW over the trainable parameters of `module`, each in exactly one group.

    param_groups (optional), e.g. HAMMER's
    {"image": {"prefixes": ["visual_encoder", ...], "lr": 1e-4}, "rest": {"lr": 2e-5}}:
    one group has no prefixes and takes every other parameter; a group without "lr" uses `lr`. Each group is
    split into a decayed and a non-decayed part; optimizer groups carry "name" = "<group>/decay|no_decay".
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    spec = dict(param_groups) if param_groups else {"all": {}}
    assignment = _assign_groups([n for n, _ in named], spec)
    skip = _no_weight_decay_names(module)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in named:
        groups.setdefault((assignment[name], use_weight_decay(name, param, skip)), []).append(param)
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
    warmup_steps: int = 1000,
    total_steps: int | None = None,
    min_lr: float = 1e-6,
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
