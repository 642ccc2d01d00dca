"""The evaluation job behind `src/eval.py`: a checkpoint on a split -> metrics.json, predictions, per-type F1 chart."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict

from asap.pipeline.common import hydra_overrides, metric_values, print_metric_summary, write_json
from asap.pipeline.errors import UserError
from asap.utils.console import print_config_tree

log = logging.getLogger(__name__)

TYPE_NAMES = ("FS", "FA", "TS", "TA")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate `cfg.ckpt_path` on `cfg.split`; the model and ablation come from the checkpoint, not the config."""
    from asap.metrics.predictions import save_predictions
    from asap.models import ASAPLitModule

    started = time.time()
    if cfg.split not in ("test", "val"):
        raise UserError(f"split must be 'test' or 'val', got {cfg.split!r}")
    module = ASAPLitModule.load_from_checkpoint_safely(cfg.ckpt_path)
    with open_dict(cfg):  # the data pipeline must match what the model was trained with
        cfg.model = OmegaConf.create(dict(module.hparams["model"]))
        cfg.ablation = OmegaConf.create(dict(module.hparams["ablation"]))
    output_dir = Path(cfg.paths.output_dir)
    print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[RichProgressBar()])
    if cfg.split == "test":
        trainer.test(module, datamodule=datamodule)
    else:
        datamodule.setup("validate")
        trainer.test(module, dataloaders=datamodule.val_dataloader())
    metrics = metric_values(trainer.callback_metrics, prefix="test/")

    save_predictions(output_dir / f"predictions_{cfg.split}.npz", **module.test_predictions)
    plot_f1_per_type(metrics, output_dir / "f1_per_type.png", title=f"{Path(cfg.ckpt_path).name} on {cfg.split}")
    write_json(
        output_dir / "metrics.json",
        {
            "task_name": cfg.task_name,
            "checkpoint": str(cfg.ckpt_path),
            "split": cfg.split,
            cfg.split: metrics,
            "overrides": hydra_overrides(),
            "wall_time_s": round(time.time() - started, 2),
        },
    )
    print_metric_summary({cfg.split: metrics})
    log.info("metrics, predictions and f1_per_type.png written to %s", output_dir)
    return metrics


def plot_f1_per_type(metrics: dict[str, float], path: Path, title: str = "") -> None:
    """The paper's Figure 6: F1 per manipulation type (FS, FA, TS, TA)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [metrics.get(f"F1_{t}", float("nan")) for t in TYPE_NAMES]
    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    bars = ax.bar(TYPE_NAMES, values, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (x100)")
    ax.set_title(title or "F1 per manipulation type", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
