"""Lightning callbacks of the project."""

from asap.callbacks.best_metrics import BestValidationMetrics
from asap.callbacks.rng_state import RNGStateCheckpoint

__all__ = ["BestValidationMetrics", "RNGStateCheckpoint"]
