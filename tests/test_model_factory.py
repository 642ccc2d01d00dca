"""A batch factory obeying docs/contracts.md and a micro model config, shared by the tests/test_model*.py files.

Import from the other model tests as `from test_model_factory import ...` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from asap.conf import SCHEMAS
from asap.data.patches import patch_labels

CONF = Path(__file__).resolve().parents[1] / "conf"
ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))
# fake_cls -> [FS, FA, TS, TA]
KINDS = {
    "orig": (0, 0, 0, 0),
    "face_swap": (1, 0, 0, 0),
    "text_attribute": (0, 0, 0, 1),
    "face_attribute&text_swap": (0, 1, 1, 0),
    "face_attribute": (0, 1, 0, 0),
    "text_swap": (0, 0, 1, 0),
}
CLS_ID, PAD_ID = 1, 0

# a micro model: 32x32 images, 16 patches, width 64, 1 text + 2 fusion layers, a 500-word vocabulary
MICRO_MODEL: dict[str, Any] = {
    "image_size": 32,
    "patch_size": 8,
    "tokenizer": "unused-in-these-tests",
    "max_text_len": 16,
    "image_encoder": {"name": "vit_base_patch16_224", "embed_dim": 64, "depth": 2, "num_heads": 2},
    "text_encoder": {
        "bert": {
            "vocab_size": 500,
            "hidden_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 64,
        },
        "text_layers": 1,
    },
    "embed_dim": 32,
}


def conf(group: str, name: str) -> dict[str, Any]:
    """conf/<group>/<name>.yaml on its schema (asap.conf.SCHEMAS) as a plain dict, interpolations unresolved."""
    values = OmegaConf.load(CONF / group / f"{name}.yaml")
    values.pop("defaults", None)
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(SCHEMAS[group]), values))


def micro_model(**overrides: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(MICRO_MODEL)
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def make_batch(
    B: int = 6,
    L: int = 10,
    image_size: int = 32,
    patch_size: int = 8,
    vocab: int = 500,
    aux: tuple[str, ...] = ("caption", "explanation"),
    aux_len: dict[str, int] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A contract batch: real and manipulated samples, padded texts, consistent labels, boxes and patch labels."""
    g = torch.Generator().manual_seed(seed)
    kinds = [list(KINDS)[i % len(KINDS)] for i in range(B)]
    multilabel = torch.tensor([KINDS[k] for k in kinds], dtype=torch.float)  # (B, 4)
    lengths = [L - (i % 3) for i in range(B)]  # right padding on some rows
    input_ids = torch.full((B, L), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros(B, L, dtype=torch.long)
    token_labels = torch.full((B, L - 1), -100, dtype=torch.long)
    boxes, has_box, patches = torch.zeros(B, 4), torch.zeros(B, dtype=torch.bool), []
    for i, n in enumerate(lengths):
        input_ids[i, 0], input_ids[i, 1:n] = CLS_ID, torch.randint(5, vocab, (n - 1,), generator=g)
        attention_mask[i, :n] = 1
        token_labels[i, : n - 1] = 0
        if multilabel[i, 2:].any():  # text manipulated: a few word-pieces
            token_labels[i, 1:3] = 1
        box = None
        if multilabel[i, :2].any():  # face manipulated: a box in pixels of the transformed image
            x, y = (torch.rand(2, generator=g) * image_size / 2).tolist()
            w = h = image_size / 3
            box = (x, y, w, h)
            boxes[i] = torch.tensor(
                [(x + w / 2) / image_size, (y + h / 2) / image_size, w / image_size, h / image_size]
            )
            has_box[i] = True
        patches.append(patch_labels(box, image_size, patch_size))
    batch: dict[str, Any] = {
        "image": torch.randn(B, 3, image_size, image_size, generator=g),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_labels": token_labels,
        "binary_label": multilabel.any(dim=1).long(),
        "multilabel": multilabel,
        "box": boxes,
        "has_box": has_box,
        "patch_labels": torch.stack(patches),
        "index": torch.arange(B),
        "ids": [str(i) for i in range(B)],
        "image_path": [f"DGM4/origin/x/{i}.jpg" for i in range(B)],
        "text": ["a caption"] * B,
        "orig_size": torch.tensor([[64, 48]] * B),
    }
    for kind in aux:
        n = (aux_len or {}).get(kind, {"caption": L + 3, "explanation": L + 6}[kind])
        ids = torch.randint(5, vocab, (B, n), generator=g)
        ids[:, 0] = CLS_ID
        mask = torch.ones(B, n, dtype=torch.long)
        mask[0, n // 2 :], ids[0, n // 2 :] = 0, PAD_ID  # one padded row
        batch[f"{kind}_ids"], batch[f"{kind}_mask"] = ids, mask
    return batch


def test_factory_batch_obeys_the_contract() -> None:
    b = make_batch(B=6, L=10)
    B, L = b["input_ids"].shape
    N = (32 // 8) ** 2
    assert b["token_labels"].shape == (B, L - 1) and b["patch_labels"].shape == (B, N)
    assert torch.equal(b["token_labels"] != -100, b["attention_mask"][:, 1:].bool())
    assert torch.equal(b["binary_label"].bool(), b["multilabel"].bool().any(dim=1))
    assert torch.equal(b["has_box"], b["multilabel"][:, :2].bool().any(dim=1))
    assert (b["patch_labels"][~b["has_box"]] == -1).all() and (b["patch_labels"][b["has_box"]] == 1).any(
        dim=1
    ).all()
    assert (b["box"][~b["has_box"]] == 0).all()


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_presets_have_the_contract_keys(name: str) -> None:
    assert set(conf("ablation", name)) == {"caption", "explanation", "ied", "mgca", "pmm", "hnp", "modality"}
