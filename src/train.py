"""Train ASAP and test the best checkpoint.

    python src/train.py                                   # the embedded default (synthetic DGM4, tiny model, CPU)
    python src/train.py experiment=asap_full data.root=/path/holding/DGM4
    python src/train.py -m loss.alpha=0.1,0.5,1.0         # a sweep; or sweep=table2_components
    python src/train.py --help                            # config groups and their options
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import asap.conf  # noqa: F401  (registers the ${...} resolvers and the group schemas used in conf/)
from asap.pipeline.train import train
from asap.utils.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
