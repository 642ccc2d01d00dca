"""DGM4DataModule on hand-written DGM4 records (every fake_cls, the flip, aux texts) and on the synthetic set."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from asap.data import DGM4DataModule
from asap.data.records import FAKE_CLASSES, is_image_manipulated, is_text_manipulated
from asap.data.transforms import CLIP_MEAN, CLIP_STD
from asap.errors import AuxTextMissingError
from helpers import _dm, _write_cache

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
CONTRACT_KEYS = {
    "image",
    "input_ids",
    "attention_mask",
    "token_labels",
    "binary_label",
    "multilabel",
    "box",
    "has_box",
    "patch_labels",
    "index",
    "ids",
    "image_path",
    "text",
    "orig_size",
}
MULTILABEL = {
    "orig": [0, 0, 0, 0],
    "face_swap": [1, 0, 0, 0],
    "face_attribute": [0, 1, 0, 0],
    "text_swap": [0, 0, 1, 0],
    "text_attribute": [0, 0, 0, 1],
    "face_swap&text_swap": [1, 0, 1, 0],
    "face_swap&text_attribute": [1, 0, 0, 1],
    "face_attribute&text_swap": [0, 1, 1, 0],
    "face_attribute&text_attribute": [0, 1, 0, 1],
}
BOX = [12, 8, 42, 40]  # on a 120x80 image: x=12 y=8 w=30 h=32 -> cx .225 cy .3 w .25 h .4


def _every_class(dgm4_record) -> list[dict]:
    return [
        dgm4_record(
            i,
            cls,
            fake_image_box=BOX if is_image_manipulated(cls) else [],
            fake_text_pos=[1] if is_text_manipulated(cls) else [],
        )
        for i, cls in enumerate(FAKE_CLASSES)
    ]


def test_every_fake_cls_gives_the_protocol_targets(make_dgm4, dgm4_record, tokenizer_dir) -> None:
    records = _every_class(dgm4_record)
    dm = _dm(make_dgm4({"val": records}), tokenizer_dir)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == CONTRACT_KEYS
    assert batch["multilabel"].tolist() == [MULTILABEL[r["fake_cls"]] for r in records]
    assert batch["binary_label"].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1]
    boxed = torch.tensor([is_image_manipulated(c) for c in FAKE_CLASSES])
    assert torch.equal(batch["has_box"], boxed)
    assert torch.allclose(
        batch["box"][boxed], torch.tensor([0.225, 0.3, 0.25, 0.4]).expand(int(boxed.sum()), 4)
    )
    assert bool((batch["box"][~boxed] == 0).all())
    # box in 64px: x 6.4..22.4 (cols 0-2), y 6.4..32 (rows 0-3) -> 12 positive patches; ring: col 3 + row 4
    patches = batch["patch_labels"][boxed]  # (5, 64)
    assert ((patches == 1).sum(1) == 12).all() and ((patches == 0).sum(1) == 7).all()
    assert bool((batch["patch_labels"][~boxed] == -1).all())
    # "anna smiles at the beach": word 1 labelled for text manipulations
    texted = [is_text_manipulated(c) for c in FAKE_CLASSES]
    assert batch["token_labels"].tolist() == [[0, int(t), 0, 0, 0] for t in texted]
    assert batch["input_ids"].shape == (9, 6) and bool((batch["attention_mask"] == 1).all())
    assert batch["text"][0] == "anna smiles at the beach"
    assert batch["index"].tolist() == list(range(9)) and batch["ids"] == [str(i) for i in range(9)]
    assert batch["orig_size"].tolist() == [[120, 80]] * 9
    assert batch["image"].shape == (9, 3, 64, 64) and batch["image"].dtype == torch.float32


def _unnormalise(image: torch.Tensor) -> torch.Tensor:
    return image * torch.tensor(CLIP_STD)[:, None, None] + torch.tensor(CLIP_MEAN)[:, None, None]


def test_train_flip_moves_the_box_with_the_image(make_dgm4, dgm4_record, tokenizer_dir) -> None:
    root = make_dgm4({"train": [dgm4_record(0, "face_swap", fake_image_box=BOX)]})
    image = Image.new("RGB", (120, 80), (128, 128, 128))
    image.paste((230, 20, 20), (12, 8, 42, 40))  # red where the box is
    image.save(root / "DGM4/origin/bbc/0000/0.jpg", quality=95)
    dm = _dm(root, tokenizer_dir, train_augment=False)
    dataset = dm.build_dataset("train")
    torch.manual_seed(0)
    seen = set()
    for _ in range(24):
        sample = dataset[0]
        cx, cy, w, h = sample["box"].tolist()
        seen.add(round(cx, 4))
        assert (round(cy, 4), round(w, 4), round(h, 4)) == (0.3, 0.25, 0.4)
        rgb = _unnormalise(sample["image"])[:, int(cy * 64), int(cx * 64)]
        assert rgb[0] > 0.7 and rgb[1] < 0.3  # the box centre is red in the (possibly flipped) image
        positive = sample["patch_labels"].view(8, 8) == 1
        assert bool(positive[int(cy * 8), int(cx * 8)])
    assert seen == {0.225, 0.775}  # 1 - 0.225: both flip states happen


def test_synthetic_batches_follow_the_contract(synthetic_root, synthetic_params, tokenizer_dir) -> None:
    dm = _dm(
        synthetic_root,
        tokenizer_dir,
        load_caption=True,
        load_explanation=True,
        synthetic=synthetic_params,
        num_workers=1,
        persistent_workers=False,
    )
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert set(train) == CONTRACT_KEYS | {
        "caption_ids",
        "caption_mask",
        "explanation_ids",
        "explanation_mask",
    }
    b, length = train["input_ids"].shape
    assert train["token_labels"].shape == (b, length - 1)
    assert bool(((train["token_labels"] == -100) == (train["attention_mask"][:, 1:] == 0)).all())
    assert train["patch_labels"].shape == (b, 64) and train["image"].shape == (b, 3, 64, 64)
    for kind in ("caption", "explanation"):
        ids, mask = train[f"{kind}_ids"], train[f"{kind}_mask"]
        assert ids.shape == mask.shape and bool((ids[:, 0] == dm.tokenizer.cls_token_id).all())
        assert bool((ids[mask == 0] == dm.tokenizer.pad_token_id).all())
    assert (train["box"].abs().sum(1) > 0).tolist() == train["has_box"].tolist()
    val = next(iter(dm.val_dataloader()))
    assert set(val) == CONTRACT_KEYS  # aux texts only for aux_splits (train)
    assert val["index"].tolist() == list(range(len(val["ids"])))


def test_aux_texts_are_keyed_by_image_and_text(make_dgm4, dgm4_record, tokenizer_dir) -> None:
    orig = dgm4_record(7, "orig", text="Anna smiles at the beach.")
    swapped = dgm4_record(7, "text_swap", text="Boris frowns in the city.", fake_text_pos=[0, 1, 4])
    root = make_dgm4({"train": [orig, swapped], "val": [orig]})
    image = orig["image"]
    _write_cache(
        root,
        "caption",
        [
            (image, orig["text"], "A smiling woman, on a beach!"),
            (image, swapped["text"], "A woman with red hair by the sea."),
        ],
    )
    _write_cache(
        root,
        "explanation",
        [(image, orig["text"], "Anna is a footballer."), (image, swapped["text"], "Boris is a politician.")],
    )
    dm = _dm(root, tokenizer_dir, load_caption=True, load_explanation=True, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert "caption_ids" not in batch
    batch = next(iter(dm.train_dataloader()))
    decode = dm.tokenizer.decode
    by_text = dict(zip(batch["text"], range(2), strict=True))
    o, s = by_text["anna smiles at the beach"], by_text["boris frowns in the city"]
    caption = {
        i: decode(batch["caption_ids"][i][batch["caption_mask"][i] == 1], skip_special_tokens=True)
        for i in (o, s)
    }
    assert caption == {o: "a smiling woman on a beach", s: "a woman with red hair by the sea"}  # cleaned
    explanation = [
        decode(batch["explanation_ids"][i][batch["explanation_mask"][i] == 1], skip_special_tokens=True)
        for i in (o, s)
    ]
    assert explanation == ["anna is a footballer", "boris is a politician"]


def test_missing_aux_text_error_names_records_and_count(make_dgm4, dgm4_record, tokenizer_dir) -> None:
    records = [dgm4_record(i, text=f"Anna smiles at beach {i}.") for i in range(3)]
    root = make_dgm4({"train": records})
    _write_cache(root, "caption", [(records[0]["image"], records[0]["text"], "a photo")])
    with pytest.raises(AuxTextMissingError, match=r"2 of 3 train records have no caption") as err:
        _dm(root, tokenizer_dir, load_caption=True).build_dataset("train")
    assert "#1 (id=1)" in str(err.value) and "#2 (id=2)" in str(err.value)
    with pytest.raises(AuxTextMissingError, match="explanation cache not found"):
        _dm(root, tokenizer_dir, load_explanation=True).build_dataset("train")


def test_missing_aux_text_fallback_uses_own_text_and_logs(
    make_dgm4, dgm4_record, tokenizer_dir, caplog
) -> None:
    records = [dgm4_record(i, text=f"Anna smiles at beach {i}.") for i in range(3)]
    root = make_dgm4({"train": records})
    _write_cache(root, "caption", [(records[0]["image"], records[0]["text"], "A photo.")])
    with caplog.at_level(logging.WARNING):
        ds = _dm(root, tokenizer_dir, load_caption=True, missing_aux="fallback").build_dataset("train")
    assert ds.captions == ["a photo", "anna smiles at beach 1", "anna smiles at beach 2"]
    assert "2 of 3 train records have no caption" in caplog.text


def _compose(name: str, **ablation: bool) -> OmegaConf:
    import asap.utils.resolvers  # noqa: F401 - registers ${any:...}

    base = {
        "paths": {"data_dir": "/tmp/unused"},
        "model": {"tokenizer": "tok", "image_size": 64, "patch_size": 8, "max_text_len": 96},
        "ablation": {"caption": False, "explanation": False, "ied": False} | ablation,
    }
    return OmegaConf.merge(base, {"data": OmegaConf.load(CONF / f"{name}.yaml")})


def test_hydra_configs_instantiate_the_datamodule(tmp_path, tokenizer_dir) -> None:
    from hydra.utils import instantiate
    from omegaconf.errors import MissingMandatoryValue

    cfg = _compose("synthetic", ied=True)
    cfg.model.tokenizer, cfg.paths.data_dir = tokenizer_dir, str(tmp_path)
    dm = instantiate(cfg.data)
    assert isinstance(dm, DGM4DataModule)
    assert dm.root == tmp_path / "synthetic" and dm.synthetic == dict(cfg.data.synthetic)
    assert (dm.hparams.image_size, dm.hparams.patch_size) == (64, 8)
    assert dm.hparams.max_text_length == 96  # the model config decides the text length
    assert dm.hparams.load_caption is False and dm.hparams.load_explanation is True  # any(explanation, ied)
    with pytest.raises(MissingMandatoryValue, match="root"):
        instantiate(_compose("dgm4").data)
    real = _compose("dgm4", caption=True)
    real.data.root = str(tmp_path)
    assert instantiate(real.data).hparams.load_caption is True
