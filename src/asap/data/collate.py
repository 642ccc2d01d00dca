"""`DGM4Collator`: samples -> the batch dict of docs/contracts.md, padded to the longest text in the batch."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from asap.labels import IGNORE_INDEX


def pad_ids(seqs: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id tensors -> ids (B, L) and attention mask (B, L)."""
    ids = pad_sequence(seqs, batch_first=True, padding_value=pad_id)  # (B, L)
    lengths = torch.tensor([len(s) for s in seqs])  # (B,)
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()  # (B, L)
    return ids, mask


class DGM4Collator:
    """Batches `DGM4Dataset` samples; caption / explanation keys appear only when the samples carry them."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        input_ids, attention_mask = pad_ids([s["input_ids"] for s in samples], self.pad_token_id)  # (B, L)
        token_labels = pad_sequence(
            [s["token_labels"] for s in samples], batch_first=True, padding_value=IGNORE_INDEX
        )  # (B, L-1)
        if token_labels.shape[1] != input_ids.shape[1] - 1:  # a sample with labels for every word-piece
            raise ValueError(
                f"token_labels {tuple(token_labels.shape)} do not match input_ids {tuple(input_ids.shape)}"
            )
        batch: dict[str, Any] = {
            "image": torch.stack([s["image"] for s in samples]),  # (B, 3, H, W)
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_labels": token_labels,
            "binary_label": torch.tensor([s["binary_label"] for s in samples], dtype=torch.long),  # (B,)
            "multilabel": torch.stack([s["multilabel"] for s in samples]),  # (B, 4)
            "box": torch.stack([s["box"] for s in samples]),  # (B, 4)
            "has_box": torch.tensor([s["has_box"] for s in samples], dtype=torch.bool),  # (B,)
            "patch_labels": torch.stack([s["patch_labels"] for s in samples]),  # (B, N)
            "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),  # (B,)
            "ids": [s["id"] for s in samples],
            "image_path": [s["image_path"] for s in samples],
            "text": [s["text"] for s in samples],
            "orig_size": torch.tensor([s["orig_size"] for s in samples], dtype=torch.long),  # (B, 2) W, H
        }
        for kind in ("caption", "explanation"):
            if f"{kind}_ids" in samples[0]:
                ids, mask = pad_ids([s[f"{kind}_ids"] for s in samples], self.pad_token_id)  # (B, Lc)
                batch[f"{kind}_ids"], batch[f"{kind}_mask"] = ids, mask
        return batch
