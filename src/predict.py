"""Judge image-text pairs with a trained checkpoint: P(manipulated), the four types, the face box in pixels, the
manipulated words, and a figure per pair (image + box, highlighted caption, text-to-image attention).

    python src/predict.py ckpt_path=last.ckpt image=photo.jpg 'text="Anna smiles, at the beach."'
    python src/predict.py ckpt_path=last.ckpt pairs=pairs.json     # [{"image": "a.jpg", "text": "..."}, ...]
    python src/predict.py --help
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import asap.utils.resolvers  # noqa: F401  (registers the ${...} resolvers used in conf/)
from asap.pipeline.predict import predict
from asap.utils.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> list[dict]:
    return predict(cfg)


if __name__ == "__main__":
    main()
