"""ALBEF checkpoint loading: a state dict with ALBEF's key names and shapes (tiny sizes) lands in our modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asap.errors import CheckpointError
from asap.models import ASAPModel, load_albef_checkpoint
from asap.models.config import ASAPConfig
from helpers import conf, micro_model

D, LAYERS, FUSION_LAYER, VOCAB, E, QUEUE = 64, 3, 1, 500, 32, 8


def _vit(prefix: str, grid: int, depth: int = 2) -> dict[str, tuple[int, ...]]:
    """ALBEF's models/vit.py VisionTransformer (timm names), patch 8, `grid`x`grid` patches."""
    shapes = {
        "cls_token": (1, 1, D),
        "pos_embed": (1, 1 + grid * grid, D),
        "patch_embed.proj.weight": (D, 3, 8, 8),
    }
    shapes |= {"patch_embed.proj.bias": (D,), "norm.weight": (D,), "norm.bias": (D,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes |= {b + "norm1.weight": (D,), b + "norm1.bias": (D,), b + "attn.qkv.weight": (3 * D, D)}
        shapes |= {b + "attn.qkv.bias": (3 * D,), b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,)}
        shapes |= {b + "norm2.weight": (D,), b + "norm2.bias": (D,), b + "mlp.fc1.weight": (4 * D, D)}
        shapes |= {b + "mlp.fc1.bias": (4 * D,), b + "mlp.fc2.weight": (D, 4 * D), b + "mlp.fc2.bias": (D,)}
    return {f"{prefix}.{k}": v for k, v in shapes.items()}


def _bert(prefix: str) -> dict[str, tuple[int, ...]]:
    """ALBEF's xbert BertForMaskedLM: embeddings, layers (cross-attention from `fusion_layer` on), MLM head."""
    e = f"{prefix}.bert.embeddings."
    shapes = {e + "word_embeddings.weight": (VOCAB, D), e + "position_embeddings.weight": (64, D)}
    shapes |= {
        e + "token_type_embeddings.weight": (2, D),
        e + "LayerNorm.weight": (D,),
        e + "LayerNorm.bias": (D,),
    }
    shapes |= {e + "position_ids": (1, 64)}
    for i in range(LAYERS):
        blocks = ["attention"] + (["crossattention"] if i >= FUSION_LAYER else [])
        for block in blocks:
            b = f"{prefix}.bert.encoder.layer.{i}.{block}."
            for name in ("self.query", "self.key", "self.value", "output.dense"):
                shapes |= {b + name + ".weight": (D, D), b + name + ".bias": (D,)}
            shapes |= {b + "output.LayerNorm.weight": (D,), b + "output.LayerNorm.bias": (D,)}
        b = f"{prefix}.bert.encoder.layer.{i}."
        shapes |= {b + "intermediate.dense.weight": (128, D), b + "intermediate.dense.bias": (128,)}
        shapes |= {b + "output.dense.weight": (D, 128), b + "output.dense.bias": (D,)}
        shapes |= {b + "output.LayerNorm.weight": (D,), b + "output.LayerNorm.bias": (D,)}
    shapes |= {
        f"{prefix}.cls.predictions.bias": (VOCAB,),
        f"{prefix}.cls.predictions.transform.dense.weight": (D, D),
    }
    return shapes


def albef_state_dict(grid: int = 6) -> dict[str, torch.Tensor]:
    """ALBEF_4M.pth's `model` at tiny size (pre-trained at a different resolution: `grid`x`grid` patches)."""
    shapes = _vit("visual_encoder", grid) | _vit("visual_encoder_m", grid)
    shapes |= _bert("text_encoder") | _bert("text_encoder_m")
    for suffix in ("", "_m"):
        shapes |= {f"vision_proj{suffix}.weight": (E, D), f"vision_proj{suffix}.bias": (E,)}
        shapes |= {f"text_proj{suffix}.weight": (E, D), f"text_proj{suffix}.bias": (E,)}
    shapes |= {"temp": (), "itm_head.weight": (2, D), "itm_head.bias": (2,)}
    shapes |= {"image_queue": (E, QUEUE), "text_queue": (E, QUEUE), "queue_ptr": (1,)}
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    state["queue_ptr"] = torch.tensor([3])
    state["text_encoder.bert.embeddings.position_ids"] = torch.arange(64)[None]
    return state


def tiny_model(momentum: bool) -> ASAPModel:
    model = micro_model(text_encoder={**micro_model()["text_encoder"], "text_layers": FUSION_LAYER})
    model["momentum"] = {"enabled": momentum, "queue_size": QUEUE}
    cfg = ASAPConfig.from_plain(model, conf("loss", "default"), conf("ablation", "full"), {})
    return ASAPModel(cfg.model, cfg.loss, cfg.ablation)


@pytest.fixture
def albef_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    state = albef_state_dict()
    path = tmp_path / "ALBEF_4M.pth"
    torch.save({"model": state, "config": {"image_res": 48, "embed_dim": E}, "epoch": 29}, path)
    return path, state


def test_albef_values_land_in_the_right_parameters(albef_file: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = albef_file
    model = tiny_model(momentum=False)
    report = load_albef_checkpoint(model, path)
    eq = torch.testing.assert_close
    eq(model.image_encoder.vit.blocks[1].attn.qkv.weight, state["visual_encoder.blocks.1.attn.qkv.weight"])
    eq(model.image_encoder.vit.cls_token, state["visual_encoder.cls_token"])
    assert model.image_encoder.vit.pos_embed.shape == (1, 1 + 16, D)  # 6x6 -> 4x4 grid, interpolated
    eq(model.image_encoder.vit.pos_embed[0, 0], state["visual_encoder.pos_embed"][0, 0])  # class token kept
    bert = model.text_encoder.bert
    eq(bert.embeddings.word_embeddings.weight, state["text_encoder.bert.embeddings.word_embeddings.weight"])
    eq(
        bert.encoder.layer[0].attention.self.key.weight,
        state["text_encoder.bert.encoder.layer.0.attention.self.key.weight"],
    )
    fusion = model.text_biased_encoder.layers
    src = "text_encoder.bert.encoder.layer.2."  # the second fusion layer
    eq(fusion[1].self_attention.value.bias, state[src + "attention.self.value.bias"])
    eq(fusion[1].self_attention.output.weight, state[src + "attention.output.dense.weight"])
    eq(fusion[1].cross_attention.key.weight, state[src + "crossattention.self.key.weight"])
    eq(fusion[1].cross_attention_norm.weight, state[src + "crossattention.output.LayerNorm.weight"])
    eq(fusion[1].ffn[2].weight, state[src + "output.dense.weight"])
    eq(fusion[0].ffn_norm.bias, state["text_encoder.bert.encoder.layer.1.output.LayerNorm.bias"])
    eq(model.alignment.vision_proj.weight, state["vision_proj.weight"])
    eq(model.alignment.text_proj.bias, state["text_proj.bias"])
    eq(model.alignment.temperature, state["temp"])
    # every encoder parameter was loaded; what is missing is HAMMER's / ASAP's new parts
    assert not [
        k for k in report.missing if k.startswith(("image_encoder.", "text_encoder.", "text_biased_encoder."))
    ]
    assert any(k.startswith("binary_head.") for k in report.missing)
    assert {"itm_head.weight", "text_encoder.cls.predictions.bias", "visual_encoder_m.cls_token"} <= set(
        report.unexpected
    )
    assert "text_encoder.bert.embeddings.position_ids" in report.unexpected  # a buffer we do not keep


def test_albef_momentum_copies_and_queues(albef_file: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = albef_file
    model = tiny_model(momentum=True)
    report = load_albef_checkpoint(model, path)
    m = model.momentum
    torch.testing.assert_close(
        m["image_encoder"].vit.blocks[0].mlp.fc1.weight, state["visual_encoder_m.blocks.0.mlp.fc1.weight"]
    )
    torch.testing.assert_close(
        m["text_biased_encoder"].layers[0].cross_attention.query.weight,
        state["text_encoder_m.bert.encoder.layer.1.crossattention.self.query.weight"],
    )
    torch.testing.assert_close(m["alignment"].text_proj.weight, state["text_proj_m.weight"])
    torch.testing.assert_close(m.image_queue, state["image_queue"].T)  # ALBEF (E, K) -> ours (K, E)
    assert int(m.queue_ptr) == 3
    # no copy of the token head in ALBEF: it starts as the online one
    torch.testing.assert_close(m["token_head"][0].weight, model.token_head[0].weight)
    assert "visual_encoder_m.cls_token" not in report.unexpected


def test_a_file_that_is_not_albef_is_refused(tmp_path: Path) -> None:
    torch.save({"model": {"encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an ALBEF checkpoint"):
        load_albef_checkpoint(tiny_model(momentum=False), tmp_path / "other.pth")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_albef_checkpoint(tiny_model(momentum=False), tmp_path / "broken.pth")
