"""ASAP model: encoders, the vision- and text-biased multimodal encoders, MGCA, heads, the LightningModule."""

from typing import Any

from asap.models.albef import load_albef_checkpoint
from asap.models.asap import ASAPModel, ASAPOutput
from asap.models.config import (
    AblationConfig,
    ASAPConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
)

__all__ = [
    "ASAPConfig",
    "ASAPLitModule",
    "ASAPModel",
    "ASAPOutput",
    "AblationConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "load_albef_checkpoint",
]


def __getattr__(name: str) -> Any:
    """`ASAPLitModule` is imported on first use (it pulls in Lightning and the metrics)."""
    if name == "ASAPLitModule":
        from asap.models.lit_module import ASAPLitModule

        return ASAPLitModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
