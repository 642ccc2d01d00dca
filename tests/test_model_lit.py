"""ASAPLitModule: a Lightning run per ablation preset, bf16, checkpoints, the optimiser, a real synthetic batch."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import LambdaCallback
from torch.utils.data import DataLoader

from asap.errors import CheckpointError
from asap.metrics.predictions import save_predictions
from asap.models import ASAPLitModule
from helpers import ABLATIONS, conf, make_batch, micro_model

OPTIM = {
    "lr": 1e-3,
    "weight_decay": 0.02,
    "betas": [0.9, 0.999],
    "warmup_steps": 5,
    "min_lr": 1e-5,
    "param_groups": None,
}


def lit(ablation: str = "full", **optim: Any) -> ASAPLitModule:
    torch.manual_seed(0)
    return ASAPLitModule(
        model=micro_model(),
        loss=conf("loss", "default"),
        ablation=conf("ablation", ablation),
        optim={**OPTIM, **optim},
    )


def trainer(**kwargs: Any) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**(defaults | kwargs))


def loaders(n: int = 2) -> tuple[DataLoader, DataLoader]:
    """Train batches carry captions / explanations; eval batches do not (as the data config loads them)."""
    train = [make_batch(B=6, L=10, seed=i) for i in range(n)]
    evaluation = [make_batch(B=6, L=10 - i, aux=(), seed=10 + i) for i in range(n)]
    for i, b in enumerate(evaluation):
        b["index"] = b["index"] + 6 * i
    return DataLoader(train, batch_size=None), DataLoader(evaluation, batch_size=None)


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_fast_dev_run_per_ablation_preset(ablation: str) -> None:
    module, (train, evaluation) = lit(ablation), loaders(1)
    run = trainer(fast_dev_run=True, precision="bf16-mixed" if ablation == "full" else "32-true")
    run.fit(module, train_dataloaders=train, val_dataloaders=evaluation)
    logged = run.callback_metrics
    assert torch.isfinite(logged["train/loss"])
    assert {f"train/loss_{name}" for name in ("bic", "mlc", "tmg", "bbox", "giou")} <= set(logged)
    assert ("train/loss_mgca" in logged) == conf("ablation", ablation)["mgca"]
    assert {"val/AUC", "val/IoU_mean", "val/F1"} <= set(logged)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    module, (train, evaluation) = lit("full"), loaders(2)
    run = trainer(max_steps=3, limit_val_batches=1)
    run.fit(module, train_dataloaders=train, val_dataloaders=evaluation)
    run.test(module, dataloaders=evaluation)
    predictions = module.test_predictions
    assert predictions["token_logits"].shape == (12, 15, 2)  # padded to max_text_len - 1
    assert (predictions["index"] == list(range(12))).all() and len(predictions["ids"]) == 12
    save_predictions(tmp_path / "predictions.npz", **predictions)  # the prediction file accepts them
    assert {"test/AUC", "test/F1"} <= set(run.callback_metrics)
    path = tmp_path / "asap.ckpt"
    run.save_checkpoint(path)

    loaded = ASAPLitModule.load_from_checkpoint_safely(path)
    assert loaded.hparams["model"] == module.hparams["model"] and not loaded.training
    module.eval()
    with torch.no_grad():
        for batch in evaluation.dataset:
            a, b = module(batch), loaded(batch)
            for key in ("binary_logits", "multilabel_logits", "box_pred", "token_logits"):
                assert torch.equal(getattr(a, key), getattr(b, key)), key


class _NotAllowed:
    pass


def test_bad_checkpoint_files_give_a_clear_error(tmp_path: Path) -> None:
    module, (train, _) = lit("baseline"), loaders(1)
    run = trainer(max_steps=1, limit_val_batches=0)
    run.fit(module, train_dataloaders=train)
    good = tmp_path / "good.ckpt"
    run.save_checkpoint(good)
    data = good.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.ckpt").write_bytes(b"\x00not a checkpoint" * 10)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, tmp_path / "other_lightning.ckpt")
    with (tmp_path / "unsafe.ckpt").open("wb") as f:
        pickle.dump({"state_dict": _NotAllowed()}, f)
    cases = {
        "truncated.ckpt": "corrupt or truncated",
        "garbage.ckpt": "corrupt or truncated|not loaded",
        "foreign.ckpt": "not a Lightning checkpoint",
        "other_lightning.ckpt": "not an ASAP checkpoint",
        "unsafe.ckpt": "weights_only=True",
        "missing.ckpt": "checkpoint not found",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            ASAPLitModule.load_from_checkpoint_safely(tmp_path / name)


def test_optimiser_groups_and_schedule() -> None:
    module = lit("full", param_groups={"image": {"prefixes": ["image_encoder"]}, "rest": {"lr": 2e-4}})
    run = trainer(max_steps=4)
    module.trainer = run  # estimated_stepping_batches = max_steps
    config = module.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]
    assert schedule["interval"] == "step"
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}  # warm-up clamped to the 4 steps of the run
    assert lrs["image/decay"] == pytest.approx(1e-3 / 4) and lrs["rest/decay"] == pytest.approx(2e-4 / 4)
    assert lrs["image/no_decay"] == pytest.approx(1e-3 / 4)  # the paper recipe: norms, biases not decayed


def test_official_optimiser_in_a_run() -> None:
    """optim=official: the official groups, decay on every parameter, the lr of official_lr at each step."""
    from asap.models.optim import official_lr

    module = lit("full", **conf("optim", "official"))
    seen: list[list[float]] = []  # the lr of every group at the start of each step
    record = LambdaCallback(
        on_train_batch_start=lambda tr, *_: seen.append([g["lr"] for g in tr.optimizers[0].param_groups])
    )
    run = trainer(max_epochs=2, limit_val_batches=0, callbacks=[record])
    run.fit(module, *loaders(n=3))
    groups = run.optimizers[0].param_groups
    assert {g["name"] for g in groups} == {"image/decay", "rest/decay"}  # decay_all: no no-decay part
    assert all(g["weight_decay"] == pytest.approx(0.02) for g in groups)
    image = module.model.box_head[0].weight
    image_group = next(i for i, g in enumerate(groups) if any(p is image for p in g["params"]))
    bases = [1e-4 if i == image_group else 2e-5 for i in range(len(groups))]
    shape = dict(steps_per_epoch=3, epochs=2, warmup_lr=1e-6, warmup_stages=10, stage_steps=100, min_lr=1e-6)
    expected = [[official_lr(b, step, **shape) for b in bases] for step in range(6)]
    np.testing.assert_allclose(seen, expected, rtol=1e-9)
    assert seen[3][image_group] == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi / 2)))


def test_a_real_batch_of_the_synthetic_set_with_the_tiny_model(
    synthetic_root: Path, tokenizer_dir: str
) -> None:
    from asap.data import DGM4DataModule

    model = conf("model", "tiny") | {"tokenizer": tokenizer_dir}
    data = DGM4DataModule(
        root=synthetic_root,
        tokenizer=tokenizer_dir,
        image_size=model["image_size"],
        patch_size=model["patch_size"],
        batch_size=8,
        num_workers=0,
        load_caption=True,
        load_explanation=True,
        image_check="none",
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    torch.manual_seed(0)
    module = ASAPLitModule(
        model=model, loss=conf("loss", "default"), ablation=conf("ablation", "full"), optim=OPTIM
    )
    out = module.model.train()(batch)
    B, L = batch["input_ids"].shape
    assert out.token_logits.shape == (B, L - 1, 2) and out.text_to_image_attention.shape == (B, L - 1, 64)
    assert set(out.losses) == {"bic", "mlc", "bbox", "giou", "tmg", "vlc", "ied", "mgca", "pmm"}
    assert all(torch.isfinite(v) for v in out.losses.values())
