"""Lightning callbacks of the project."""

from asap.callbacks.best_metrics import BestValidationMetrics
from asap.callbacks.rng_state import RNGStateCheckpoint
from asap.callbacks.wandb_images import WandbValidationSamples

__all__ = ["BestValidationMetrics", "RNGStateCheckpoint", "WandbValidationSamples"]
