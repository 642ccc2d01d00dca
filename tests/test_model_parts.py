"""The model's parts: attention (eq. 7), encoders, fusion layers, weights from local files, config validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from asap.errors import ConfigError
from asap.models.attention import MultiHeadAttention
from asap.models.config import ASAPConfig, ImageEncoderConfig, TextEncoderConfig
from asap.models.image_encoder import build_image_encoder, sincos_pos_embed
from asap.models.packing import Packing
from asap.models.text_biased_encoder import TextBiasedEncoder
from asap.models.text_encoder import build_text_encoder
from helpers import conf, micro_model

BERT = {
    "vocab_size": 100,
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 64,
}


def test_explicit_attention_map_equals_fused_sdpa_and_masks_padding() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4, context_dim=16).eval()
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 16)
    key_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    fused, no_map = attn(x, ctx, key_mask=key_mask)
    explicit, amap = attn(x, ctx, key_mask=key_mask, return_map=True)
    assert no_map is None
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    assert amap.probs.shape == amap.scores.shape == (2, 5, 7)
    torch.testing.assert_close(amap.probs.sum(-1), torch.ones(2, 5))  # eq. 7 rows are distributions
    assert (amap.probs[1, :, 4:] == 0).all()  # padded keys get no attention


def test_text_encoder_ignores_padding_and_keeps_its_lower_layers() -> None:
    torch.manual_seed(0)
    encoder, upper = build_text_encoder(TextEncoderConfig(bert=BERT, text_layers=1))
    assert len(encoder.bert.encoder.layer) == 1 and len(upper) == 3
    ids = torch.randint(5, 100, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    (out,) = encoder.eval()([(ids, Packing.of(mask))])
    ids2 = ids.clone()
    ids2[1, 4:] = 7  # change only padded ids
    torch.testing.assert_close(out[1, :4], encoder([(ids2, Packing.of(mask))])[0][1, :4])
    torch.testing.assert_close(
        encoder.bert(input_ids=ids2, attention_mask=mask).last_hidden_state[1, :4],
        out[1, :4],
        atol=1e-5,
        rtol=1e-4,
    )
    assert out.shape == (2, 6, 32) and out[1, 4:].abs().max() == 0  # padding rows are not computed


def test_bert_from_a_local_folder_fills_text_and_fusion_layers(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    BertModel(BertConfig(**BERT), add_pooling_layer=False).save_pretrained(tmp_path)
    reference = BertModel.from_pretrained(tmp_path, add_pooling_layer=False)
    cfg = TextEncoderConfig(bert=BERT, text_layers=2, pretrained=str(tmp_path))
    encoder, upper = build_text_encoder(cfg)
    fusion = TextBiasedEncoder(BertConfig(**BERT), len(upper), image_width=32)
    fusion.load_bert_layers(upper)
    torch.testing.assert_close(
        encoder.bert.encoder.layer[1].output.dense.weight, reference.encoder.layer[1].output.dense.weight
    )
    ref_layer = reference.encoder.layer[3]
    layer = fusion.layers[1]
    torch.testing.assert_close(layer.self_attention.query.weight, ref_layer.attention.self.query.weight)
    torch.testing.assert_close(layer.self_attention_norm.weight, ref_layer.attention.output.LayerNorm.weight)
    torch.testing.assert_close(layer.ffn[0].weight, ref_layer.intermediate.dense.weight)
    torch.testing.assert_close(layer.ffn_norm.bias, ref_layer.output.LayerNorm.bias)
    # and without `pretrained` nothing is read: random init from the config
    random_encoder, _ = build_text_encoder(TextEncoderConfig(bert=BERT, text_layers=2))
    assert not torch.equal(
        random_encoder.bert.embeddings.word_embeddings.weight, reference.embeddings.word_embeddings.weight
    )


def test_fusion_layers_return_maps_only_for_the_asked_layers() -> None:
    torch.manual_seed(0)
    fusion = TextBiasedEncoder(BertConfig(**BERT), 3, image_width=32).eval()
    text, image = torch.randn(2, 6, 32), torch.randn(2, 17, 32)
    packing = Packing.of(torch.ones(2, 6, dtype=torch.long))
    plain, maps = fusion(text, packing, image)
    assert maps == []
    with_maps, maps = fusion(text, packing, image, map_layers=[0, -1])
    assert len(maps) == 2 and maps[0].probs.shape == (2, 6, 17)
    torch.testing.assert_close(plain, with_maps, atol=1e-5, rtol=1e-5)  # the map does not change the output


def test_vit_from_config_and_from_a_local_file_at_another_resolution(tmp_path) -> None:  # noqa: ANN001
    cfg = ImageEncoderConfig(embed_dim=32, depth=1, num_heads=2)
    source = build_image_encoder(cfg, image_size=64, patch_size=16)
    assert source(torch.randn(2, 3, 64, 64)).shape == (2, 1 + 16, 32)
    torch.save(source.vit.state_dict(), tmp_path / "vit.pth")
    cfg.pretrained = str(tmp_path / "vit.pth")
    loaded = build_image_encoder(cfg, image_size=32, patch_size=16)  # 2x2 grid: position embedding resampled
    assert loaded.vit.pos_embed.shape == (1, 5, 32)
    torch.testing.assert_close(loaded.vit.blocks[0].attn.qkv.weight, source.vit.blocks[0].attn.qkv.weight)
    cfg.pretrained = str(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="no such weight file"):
        build_image_encoder(cfg, image_size=32, patch_size=16)


def test_conv_stem_and_sincos_positions_of_the_from_scratch_vit(tmp_path) -> None:  # noqa: ANN001
    cfg = ImageEncoderConfig(embed_dim=32, depth=1, num_heads=2, stem="conv", pos_embed_init="sincos")
    encoder = build_image_encoder(cfg, image_size=32, patch_size=8)
    stem = encoder.vit.patch_embed.proj
    assert [type(m).__name__ for m in stem][:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in stem) == 3  # 2**3 = patch size 8
    assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 1 + 16, 32)
    image = torch.randn(2, 3, 32, 32, requires_grad=True)
    encoder.eval()  # batch statistics in training would tie every pixel to every patch
    encoder.vit.patch_embed(image)[:, 0].sum().backward()  # patch (0, 0): a local receptive field
    reach = image.grad.abs().sum(dim=(0, 1))  # (32, 32)
    assert reach[:8, :8].sum() > 0 and reach[16:, :].sum() == 0 and reach[:, 16:].sum() == 0
    expected = sincos_pos_embed((4, 4), 32)
    torch.testing.assert_close(encoder.vit.pos_embed.detach(), expected)
    assert expected[0, 0].abs().sum() == 0 and expected[0, 1:].std() > 0.3  # class token 0; patches spread
    # loaded weights replace the initial positions
    trained = {k: v + 1.0 if k == "pos_embed" else v for k, v in encoder.vit.state_dict().items()}
    torch.save(trained, tmp_path / "vit.pth")
    cfg.pretrained = str(tmp_path / "vit.pth")
    loaded = build_image_encoder(cfg, image_size=32, patch_size=8)
    torch.testing.assert_close(loaded.vit.pos_embed.detach(), expected + 1.0)
    cfg.pretrained = None
    with pytest.raises(ConfigError, match="power-of-two patch_size, got"):
        build_image_encoder(cfg, image_size=48, patch_size=12)


def _config(model: dict | None = None, loss: dict | None = None, ablation: dict | None = None) -> ASAPConfig:
    return ASAPConfig.from_plain(
        model or micro_model(), loss or conf("loss", "default"), ablation or conf("ablation", "full"), {}
    )


def test_configs_of_the_repository_validate() -> None:
    for name in ("tiny", "asap_base"):
        model = conf("model", name)
        model["tokenizer"] = "bert-base-uncased"  # the tiny one interpolates a resolver
        cfg = _config(model=model)
        assert cfg.model.num_patches == (cfg.model.image_size // cfg.model.patch_size) ** 2
    base = _config(model={**conf("model", "asap_base"), "tokenizer": "x"}).model
    assert (base.image_size, base.patch_size, base.text_encoder.text_layers, base.fusion_layers) == (
        256,
        16,
        6,
        6,
    )


@pytest.mark.parametrize(
    ("part", "change", "message"),
    [
        ("model", {"image_encodr": {}}, r"unknown key\(s\) \['image_encodr'\] in `model`"),
        ("model", {"image_encoder": {"embed_dim": 48}}, "must equal the BERT hidden_size"),
        ("model", {"momentum": {"enabled": "yes"}}, "model.momentum.enabled` must be bool"),
        ("ablation", {"modality": "audio"}, "ablation.modality must be one of"),
        ("ablation", {"captions": True}, r"unknown key\(s\) \['captions'\] in `ablation`"),
        ("model", {"image_encoder": {"stem": "resnet"}}, "image_encoder.stem must be one of"),
        (
            "model",
            {"image_encoder": {"pos_embed_init": "zeros"}},
            "image_encoder.pos_embed_init must be one of",
        ),
        ("loss", {"mgca": {"form": "other"}}, "loss.mgca.form must be one of"),
        ("loss", {"mgca": {"layers": [5]}}, "is not one of the 2 fusion layers"),
        ("loss", {"betta": 1.0}, r"unknown key\(s\) \['betta'\] in `loss`"),
    ],
)
def test_bad_config_values_give_a_clear_error(part: str, change: dict, message: str) -> None:
    parts = {"model": micro_model(), "loss": conf("loss", "default"), "ablation": conf("ablation", "full")}
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(parts[part].get(key), dict):
            parts[part][key] = {**parts[part][key], **value}
        else:
            parts[part][key] = value
    with pytest.raises(ConfigError, match=message):
        _config(**parts)


def test_the_paper_model_builds_from_config_without_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """asap_base (ViT-B/16 at 256 + BERT-base 6+6) from config alone: no hub access, no allocation (meta)."""
    from asap.models import ASAPModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _config(model={**conf("model", "asap_base"), "tokenizer": "x"})
    with torch.device("meta"):
        model = ASAPModel(cfg.model, cfg.loss, cfg.ablation)
    assert model.image_encoder.vit.pos_embed.shape == (1, 1 + 16 * 16, 768)
    assert len(model.text_encoder.bert.encoder.layer) == 6 and len(model.text_biased_encoder.layers) == 6

    def count(*prefixes: str) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefixes))

    assert 85e6 < count("image_encoder") < 87e6  # ViT-B/16
    cross_attention = sum(count(f"text_biased_encoder.layers.{i}.cross_attention") for i in range(6))
    assert (
        108e6 < count("text_encoder", "text_biased_encoder") - cross_attention < 110e6
    )  # BERT-base, no pooler
