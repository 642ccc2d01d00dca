"""Momentum encoders and feature queues (ALBEF/HAMMER; ASAP keeps them, `model.momentum.enabled`).

theta_m <- m theta_m + (1 - m) theta after each step; the momentum features of the last batches are kept in
queues (extra contrastive negatives for eq. 1-3) and the momentum token detector gives the soft targets of
L_tok^mom (supp. §6.4).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


def gather_all(x: Tensor) -> Tensor:
    """Concatenate `x` (B, E) over the DDP ranks (no gradient); `x` itself outside DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class MomentumModel(nn.Module):
    """EMA copies of the named online modules, and one FIFO queue (K, E) per feature kind.

    unread: parameters of the copies that no momentum pass reads ("module.param", e.g. the contrastive space's
    temperature, which the online copy keeps): kept in the state dict as they were copied, not averaged.
    """

    def __init__(
        self,
        online: Mapping[str, nn.Module],
        queues: Sequence[str],
        embed_dim: int,
        queue_size: int,
        decay: float,
        unread: Collection[str] = (),
    ) -> None:
        super().__init__()
        self.decay, self.queue_size = decay, queue_size
        self.unread = frozenset(unread)
        copied = {f"{name}.{p}" for name, module in online.items() for p, _ in module.named_parameters()}
        if not self.unread <= copied:
            raise ValueError(f"MomentumModel: unread parameters {sorted(self.unread - copied)} are not copied")
        self._holding = False
        self.copies = nn.ModuleDict({name: copy.deepcopy(module) for name, module in online.items()})
        self.copies.requires_grad_(False)
        for kind in queues:
            self.register_buffer(f"{kind}_queue", F.normalize(torch.randn(queue_size, embed_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def __getitem__(self, name: str) -> nn.Module:
        return self.copies[name]

    def queue(self, kind: str) -> Tensor:
        """The queue (K, E) itself, no copy: `enqueue` overwrites it in place, so copy (e.g. `torch.cat` it with the
        keys) what must keep this step's values."""
        return getattr(self, f"{kind}_queue")

    @torch.no_grad()
    def reset(self, online: Mapping[str, nn.Module]) -> None:
        """Copy the online weights into the momentum copies (after loading weights that have no copies)."""
        for name, module in online.items():
            self.copies[name].load_state_dict(module.state_dict())

    @torch.no_grad()
    def update(self, online: Mapping[str, nn.Module]) -> None:
        """theta_m <- decay theta_m + (1 - decay) theta (ALBEF's _momentum_update), one fused lerp over all copies
        (the `unread` parameters left out).

        A no-op inside `holding()`.
        """
        if self._holding:
            return
        params_m, params = [], []
        for name, module in online.items():
            for (pname, p_m), p in zip(self.copies[name].named_parameters(), module.parameters(), strict=True):
                if f"{name}.{pname}" not in self.unread:
                    params_m.append(p_m)
                    params.append(p.detach())
        torch._foreach_lerp_(params_m, params, 1.0 - self.decay)  # theta_m + (1 - decay) (theta - theta_m)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Keep the momentum weights as they are (the later batches of one gradient-accumulation window)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    @torch.no_grad()
    def enqueue(self, features: Mapping[str, Tensor]) -> None:
        """Write the features (B, E) of every queue kind (gathered over ranks) at the pointer, first in first out."""
        ptr = int(self.queue_ptr)
        size = 0
        for kind, feat in features.items():
            feat = gather_all(feat.float())  # (B*world, E)
            size = feat.shape[0]
            index = (ptr + torch.arange(size, device=feat.device)) % self.queue_size
            getattr(self, f"{kind}_queue")[index] = feat.to(getattr(self, f"{kind}_queue").dtype)
        self.queue_ptr.fill_((ptr + size) % self.queue_size)
