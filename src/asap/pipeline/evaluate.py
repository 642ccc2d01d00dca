"""The evaluation job behind `src/eval.py`: a checkpoint on a split -> metrics.json, predictions, per-type F1 chart."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from asap.callbacks.progress import progress_bar
from asap.errors import UserError
from asap.pipeline.breakdown import run_breakdown
from asap.pipeline.common import hydra_overrides, print_metric_summary, test_metrics, write_json
from asap.utils.console import print_config_tree

log = logging.getLogger(__name__)

SPLITS = ("test", "val")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate `cfg.ckpt_path` on `cfg.split`; the model and ablation come from the checkpoint, not the config."""
    from asap.inference.loading import resolve_tokenizer_path
    from asap.metrics.predictions import save_predictions
    from asap.models import ASAPLitModule
    from asap.visualize.figures import plot_f1_per_type

    started = time.time()
    if cfg.split not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}, got {cfg.split!r}")
    module = ASAPLitModule.load_from_checkpoint_safely(cfg.ckpt_path)  # weights_only; CheckpointError if bad
    with open_dict(cfg):  # the data pipeline must match what the model was trained with
        cfg.model = OmegaConf.create(dict(module.hparams["model"]))
        cfg.model.tokenizer = resolve_tokenizer_path(str(cfg.model.tokenizer), cfg.get("tokenizer"))
        cfg.ablation = OmegaConf.create(dict(module.hparams["ablation"]))
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[progress_bar()])
    if trainer.is_global_zero:  # under DDP every rank runs this job; rank 0 alone prints and writes files
        print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    if cfg.split == "test":
        trainer.test(module, datamodule=datamodule, verbose=False)
    else:
        datamodule.setup("validate")
        trainer.test(module, dataloaders=datamodule.val_dataloader(), verbose=False)
    metrics = test_metrics(trainer, module)  # each sample once, also under DDP
    if not trainer.is_global_zero:
        return metrics
    predictions = save_predictions(output_dir / f"predictions_{cfg.split}.npz", **module.test_predictions)
    breakdown = run_breakdown(cfg, module.test_predictions, output_dir, cfg.split)
    title = f"{Path(cfg.ckpt_path).name} on {cfg.split} ({len(module.test_predictions['ids'])} samples)"
    figure = plot_f1_per_type(metrics, output_dir / "f1_per_type.png", title=title)
    write_json(
        output_dir / "metrics.json",
        {
            "task_name": cfg.task_name,
            "checkpoint": str(cfg.ckpt_path),
            "split": cfg.split,
            cfg.split: metrics,
            "num_samples": len(module.test_predictions["ids"]),
            "predictions": str(predictions),
            "figure": str(figure),
            "breakdown": {kind: str(path) for kind, path in breakdown.items()},
            "model": OmegaConf.to_container(cfg.model),
            "ablation": OmegaConf.to_container(cfg.ablation),
            "overrides": hydra_overrides(),
            "wall_time_s": round(time.time() - started, 2),
        },
    )
    print_metric_summary({cfg.split: metrics})
    log.info("metrics.json, %s and %s written to %s", predictions.name, figure.name, output_dir)
    return metrics
