"""Start from an ALBEF checkpoint (`ALBEF_4M.pth`, HAMMER's start; `ALBEF.pth`, the ASAP code's start).

The keys are mapped by the one official key map (`asap.models.official_keys`, source "albef"; table in
docs/checkpoints.md): ViT, BERT embeddings and layers (the upper layers into E_mm^t), projections, temperature and,
when model.momentum.enabled, the momentum copies and queues (pos_embed interpolated to our grid). Unlike
`src/convert.py`, a partial load is the point here: HAMMER's and ASAP's own parts stay as initialised (`missing`);
ALBEF's MLM and ITM heads, and any tensor with no target in this model, are reported as `unexpected`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asap.models.asap import ASAPModel
from asap.models.checkpoint import CheckpointError, read_checkpoint
from asap.models.official_keys import import_official
from asap.models.text_encoder import bert_config

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    path: str
    loaded: list[str] = field(default_factory=list)  # our keys that received a value
    missing: list[str] = field(default_factory=list)  # our keys left as initialised
    # checkpoint keys not used (no counterpart, or a shape that cannot fit)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Counts, with the missing and unexpected keys grouped by their top-level name."""
        return (
            f"ALBEF checkpoint {self.path}: {len(self.loaded)} tensors loaded; "
            f"missing (left as initialised): {_grouped(self.missing)}; unexpected (unused): {_grouped(self.unexpected)}"
        )


def _grouped(keys: list[str]) -> str:
    counts = Counter(k.split(".")[0] for k in keys)
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items())) or "none"


@torch.no_grad()
def load_albef_checkpoint(model: ASAPModel, path: str | Path) -> LoadReport:
    """Copy the weights of an ALBEF checkpoint into `model`; returns (and logs) loaded / missing / unexpected."""
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("visual_encoder.") for k in state):
        raise CheckpointError(f"{path} is not an ALBEF checkpoint (no `visual_encoder.*` weights)")
    cfg = model.cfg.text_encoder
    ours = model.state_dict()
    values, keys = import_official(state, "albef", ours, cfg.text_layers, bert_config(cfg).num_hidden_layers)
    model.load_state_dict(values, strict=False)
    report = LoadReport(path=str(path), loaded=[to for _, to in keys.mapped] + [to for to, _ in keys.derived])
    report.unexpected = [k for k, _ in keys.dropped]
    report.unexpected += [f"{k} ({why})" if why.startswith("shape") else k for k, why in keys.unmapped]
    report.missing = [k for k in ours if k not in values and not k.startswith("momentum.")]
    log.info(report.summary())
    print(report.summary())
    return report
