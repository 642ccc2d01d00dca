"""`DGM4DataModule`: the DGM4 splits (real or embedded synthetic) as Lightning dataloaders of contract batches."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from asap.data.aux_text import AUX_KINDS, MISSING_POLICIES, lookup_aux_texts
from asap.data.collate import DGM4Collator
from asap.data.dataset import DGM4Dataset, Entry
from asap.data.image_cache import ImageCache
from asap.data.patches import patch_grid
from asap.data.records import SPLITS, load_split
from asap.data.resumable_loader import ResumableDataLoader, TrainPosition
from asap.data.text import load_tokenizer
from asap.data.transforms import build_transform
from asap.data.validate import IMAGE_CHECKS, ValidationReport, validate_records
from asap.errors import DGM4DataError
from asap.utils.ranks import gather_from_ranks, own_rank

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # per-sample tokenising in forked workers
log = logging.getLogger(__name__)

BAD_RECORD_POLICIES = ("error", "skip")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class DGM4DataModule(L.LightningDataModule):
    """DGM4 train / val / test as contract batches (docs/contracts.md).

    Args:
        root: folder that holds `DGM4/` (record `image` paths are relative to it).
        tokenizer: tokenizer folder or hub name (the model's; must be a fast tokenizer).
        image_size, patch_size: transformed image side and ViT patch size (the patch-label grid).
        split_files: {split: path relative to `root`}; default `DGM4/metadata/{train,val,test}.json`.
        batch_size, eval_batch_size: per-step batch sizes (eval defaults to `batch_size`).
        num_workers, pin_memory, persistent_workers, drop_last: DataLoader settings (drop_last: train only).
        max_words, max_text_length, max_aux_length: protocol word cut (50), text tokens (128), aux-text tokens.
        aux_final_sep: captions / explanations end with [SEP] (paper mode); false in official mode (conf/mode).
        train_augment: the protocol's light RandAugment on train (the flip always happens on train).
        load_caption, load_explanation: serve cached captions / explanations for the splits in `aux_splits`.
        caption_file, explanation_file: `AuxTextCache` files, relative to `root`.
        missing_aux: `error` (default) or `fallback` to the record's own text, with the count logged.
        on_bad_records: `error` (default: setup stops, listing the problems) or `skip` (drop and log them).
        image_check: `none`, `exists`, `header` (default: opens each image header, no decode) or `deep`.
        validate_workers: threads reading image headers at setup.
        synthetic: keyword arguments of `generate_synthetic_dgm4`; when set, the synthetic set is generated
            under `root` on first use (and regenerated when these change).
        image_cache: folder of decoded images pre-resized to image_size, filled on first use (None: off;
            `asap.data.image_cache`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        tokenizer: str,
        image_size: int = 256,
        patch_size: int = 16,
        split_files: Mapping[str, str] | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        drop_last: bool = True,
        max_words: int = 50,
        max_text_length: int = 128,
        max_aux_length: int = 128,
        aux_final_sep: bool = True,
        train_augment: bool = True,
        load_caption: bool = False,
        load_explanation: bool = False,
        aux_splits: Sequence[str] = ("train",),
        caption_file: str = "DGM4/aux_text/caption.jsonl",
        explanation_file: str = "DGM4/aux_text/explanation.jsonl",
        missing_aux: str = "error",
        on_bad_records: str = "error",
        image_check: str = "header",
        validate_workers: int = 8,
        synthetic: Mapping[str, Any] | None = None,
        image_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        _check_choice("missing_aux", missing_aux, MISSING_POLICIES)
        _check_choice("on_bad_records", on_bad_records, BAD_RECORD_POLICIES)
        _check_choice("image_check", image_check, IMAGE_CHECKS)
        patch_grid(image_size, patch_size)
        if str(root) in ("", "???"):
            raise ValueError(
                "data root is not set: pass root=/path/to/folder/holding/DGM4 (data.root=... in Hydra)"
            )
        self.save_hyperparameters()
        self.root = Path(root)
        self.split_files = {s: f"DGM4/metadata/{s}.json" for s in SPLITS} | dict(split_files or {})
        self.aux_splits = tuple(aux_splits)
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.datasets: dict[str, DGM4Dataset] = {}
        self.reports: dict[str, ValidationReport] = {}
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self.train_position = TrainPosition()  # the train loader's place in its epoch (mid-epoch checkpoints)

    # ------------------------------------------------------------------ setup

    def prepare_data(self) -> None:
        """Generate the synthetic set on first use (no-op for real data or when it is up to date)."""
        if self.synthetic is not None:
            from asap.data.synthetic import generate_synthetic_dgm4

            generate_synthetic_dgm4(self.root, **self.synthetic, read=True)  # no other run replaces it now

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The (fast) tokenizer, loaded on first use."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hparams.tokenizer)
        return self._tokenizer

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()  # cheap when up to date; makes direct use (and every DDP rank) safe
        for split in STAGE_SPLITS.get(stage or "", SPLITS):
            if split not in self.datasets:
                self.datasets[split] = self.build_dataset(split)

    def split_path(self, split: str) -> Path:
        if split not in self.split_files:
            raise KeyError(f"no split file configured for {split!r} (split_files: {self.split_files})")
        return self.root / self.split_files[split]

    def build_dataset(self, split: str) -> DGM4Dataset:
        """Load, validate (error or skip), attach aux texts and wrap one split."""
        hp = self.hparams
        path = self.split_path(split)
        entries = self._validated_entries(split, path, load_split(path))
        aux = {kind: self._aux_texts(kind, split, entries) for kind in AUX_KINDS}
        return DGM4Dataset(
            entries,
            root=self.root,
            split_path=path,
            tokenizer=self.tokenizer,
            transform=build_transform(hp.image_size, train=split == "train", augment=hp.train_augment),
            image_size=hp.image_size,
            patch_size=hp.patch_size,
            max_words=hp.max_words,
            max_text_length=hp.max_text_length,
            max_aux_length=hp.max_aux_length,
            aux_final_sep=hp.aux_final_sep,
            captions=aux["caption"],
            explanations=aux["explanation"],
            image_cache=ImageCache(hp.image_cache, hp.image_size) if hp.image_cache else None,
        )

    def _validated_entries(self, split: str, path: Path, records: list[Any]) -> list[Entry]:
        hp = self.hparams
        report = validate_records(
            records, self.root, path=path, image_check=hp.image_check, workers=hp.validate_workers
        )
        self.reports[split] = report
        if report.ok:
            return list(enumerate(records))
        if hp.on_bad_records == "error":
            raise DGM4DataError(f"{report.summary(show=20)}\n(set on_bad_records=skip to drop these records)")
        bad = set(report.bad_indices)
        log.warning(
            "on_bad_records=skip: dropping %d bad records:\n%s",
            len(bad),
            report.summary(show=len(report.problems)),
        )
        return [(i, r) for i, r in enumerate(records) if i not in bad]

    def _aux_texts(self, kind: str, split: str, entries: list[Entry]) -> list[str] | None:
        hp = self.hparams
        if not hp[f"load_{kind}"] or split not in self.aux_splits:
            return None
        found = lookup_aux_texts(
            entries, self.root / hp[f"{kind}_file"], kind=kind, split=split, missing=hp.missing_aux
        )
        return found.texts

    # ------------------------------------------------------------------ loaders

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"split {split!r} is not set up; call setup() first")
        hp = self.hparams
        resumable = {"position": self.train_position} if train else {}
        return (ResumableDataLoader if train else DataLoader)(
            self.datasets[split],
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            shuffle=train,
            drop_last=train and hp.drop_last,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory and torch.cuda.is_available(),
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
            collate_fn=DGM4Collator(self.tokenizer.pad_token_id),
            **resumable,
        )

    # ------------------------------------------------------------------ checkpoints (asap.data.resumable_loader)

    def state_dict(self) -> dict[str, Any]:
        """Where the train loader stands (mid-epoch), and the epoch its next iterator belongs to."""
        trainer = self.trainer
        if trainer is None:
            return {}
        at_epoch_end = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        epoch = {} if at_epoch_end else self.train_position.epoch_state()
        per_rank = gather_from_ranks(trainer, epoch)  # under DDP each rank drew its epoch from its own generator
        return {
            "train_epoch": dict(epoch, per_rank=per_rank) if epoch and len(per_rank) > 1 else epoch,
            "next_sampler_epoch": trainer.current_epoch + int(at_epoch_end),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        epoch = dict(state_dict.get("train_epoch") or {})
        if self.trainer is not None:
            epoch = own_rank(self.trainer, epoch.pop("per_rank", None)) or epoch
        self.train_position.resume(epoch, state_dict.get("next_sampler_epoch"))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
