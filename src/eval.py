"""Evaluate a trained checkpoint: the 12 DGM4 metrics, metrics.json, the prediction file, the per-type F1 chart.

    python src/eval.py ckpt_path=logs/smoke/runs/<time>/checkpoints/last.ckpt
    python src/eval.py ckpt_path=best.ckpt data=dgm4 data.root=/data/dgm4 split=val
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import asap.conf  # noqa: F401  (registers the ${...} resolvers and the group schemas used in conf/)
from asap.pipeline.evaluate import evaluate
from asap.utils.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> dict[str, float]:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
