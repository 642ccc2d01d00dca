"""Official checkpoints in, exact results out: src/convert.py (HAMMER / ASAP layouts at tiny sizes), its key map,
the round trips, eval / predict on a converted checkpoint, and 2-process DDP evaluation equal to one process.

The official state dicts are written here from HAMMER's and ASAP's documented key names (models/HAMMER.py,
models/ASAP.py, vit.py, xbert.py) and the tiny model's sizes; the official code is not imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from asap.errors import ConversionError
from asap.pipeline.convert import compose_config, export_checkpoint, import_checkpoint
from helpers import load_script, make_batch, run_script

ROOT = Path(__file__).resolve().parents[1]
# model=tiny with HAMMER's linear patch embedding (the tiny default is a conv stem HAMMER does not have)
TINY = ["model=tiny", "model.image_encoder.stem=patch", "model.momentum.queue_size=16"]
D, HEADS, DEPTH, LAYERS, FUSION, INTER, VOCAB, MAXPOS, E, QUEUE = 128, 4, 4, 4, 2, 512, 30522, 512, 64, 16
GRID, PATCH = 8, 8  # 64x64 images, 8x8 patches


def _linear(name: str, out_dim: int, in_dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (out_dim, in_dim), f"{name}.bias": (out_dim,)}


def _norm(name: str, dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (dim,), f"{name}.bias": (dim,)}


def _mlp(name: str, out_dim: int) -> dict[str, tuple[int, ...]]:
    """HAMMER's build_mlp: Linear LN GELU Linear LN GELU Linear (indices 0, 1, 3, 4, 6)."""
    shapes = _linear(f"{name}.0", 2 * D, D) | _norm(f"{name}.1", 2 * D) | _linear(f"{name}.3", 2 * D, 2 * D)
    return shapes | _norm(f"{name}.4", 2 * D) | _linear(f"{name}.6", out_dim, 2 * D)


def _mha(name: str) -> dict[str, tuple[int, ...]]:
    """nn.MultiheadAttention(D, heads): packed in_proj and out_proj."""
    return {f"{name}.in_proj_weight": (3 * D, D), f"{name}.in_proj_bias": (3 * D,)} | _linear(
        f"{name}.out_proj", D, D
    )


def _vit(prefix: str) -> dict[str, tuple[int, ...]]:
    """models/vit.py VisionTransformer."""
    shapes = {
        "cls_token": (1, 1, D),
        "pos_embed": (1, 1 + GRID * GRID, D),
        "patch_embed.proj.weight": (D, 3, 8, 8),
    }
    shapes |= {"patch_embed.proj.bias": (D,)} | _norm("norm", D)
    for i in range(DEPTH):
        b = f"blocks.{i}"
        shapes |= (
            _norm(f"{b}.norm1", D) | _linear(f"{b}.attn.qkv", 3 * D, D) | _linear(f"{b}.attn.proj", D, D)
        )
        shapes |= (
            _norm(f"{b}.norm2", D) | _linear(f"{b}.mlp.fc1", 4 * D, D) | _linear(f"{b}.mlp.fc2", D, 4 * D)
        )
    return {f"{prefix}.{k}": v for k, v in shapes.items()}


def _bert(prefix: str) -> dict[str, tuple[int, ...]]:
    """xbert BertForTokenClassification: embeddings, layers (cross-attention from fusion_layer on), classifier."""
    e = f"{prefix}.bert.embeddings"
    shapes = {f"{e}.word_embeddings.weight": (VOCAB, D), f"{e}.position_embeddings.weight": (MAXPOS, D)}
    shapes |= {f"{e}.token_type_embeddings.weight": (2, D), f"{e}.position_ids": (1, MAXPOS)} | _norm(
        f"{e}.LayerNorm", D
    )
    for i in range(LAYERS):
        layer = f"{prefix}.bert.encoder.layer.{i}"
        for block in ["attention"] + (["crossattention"] if i >= FUSION else []):
            for name in ("self.query", "self.key", "self.value", "output.dense"):
                shapes |= _linear(f"{layer}.{block}.{name}", D, D)
            shapes |= _norm(f"{layer}.{block}.output.LayerNorm", D)
        shapes |= _linear(f"{layer}.intermediate.dense", INTER, D) | _linear(
            f"{layer}.output.dense", D, INTER
        )
        shapes |= _norm(f"{layer}.output.LayerNorm", D)
    return shapes | _mlp(f"{prefix}.classifier", 2)


def hammer_shapes() -> dict[str, tuple[int, ...]]:
    """HAMMER.state_dict() at the tiny sizes: encoders + momentum copies, heads, LPAA, queues, temp."""
    shapes = (
        _vit("visual_encoder") | _vit("visual_encoder_m") | _bert("text_encoder") | _bert("text_encoder_m")
    )
    for suffix in ("", "_m"):
        shapes |= _linear(f"vision_proj{suffix}", E, D) | _linear(f"text_proj{suffix}", E, D)
    shapes |= {"temp": (), "image_queue": (E, QUEUE), "text_queue": (E, QUEUE), "queue_ptr": (1,)}
    shapes |= _mlp("itm_head", 2) | _mlp("bbox_head", 4) | _mlp("cls_head", 4)
    shapes |= _norm("norm_layer_aggr", D) | {"cls_token_local": (1, 1, D)} | _mha("aggregator")
    return shapes | _norm("norm_layer_it_cross_atten", D) | _mha("it_cross_attn")


def asap_shapes() -> dict[str, tuple[int, ...]]:
    """ASAP.state_dict(): HAMMER's, with it_cross_attn = Multilmodelattention and ASAP's extra tensors."""
    shapes = {k: v for k, v in hammer_shapes().items() if not k.startswith("it_cross_attn.")}
    shapes |= _mha("it_cross_attn.selfatten") | _mha("it_cross_attn.crossatten")
    shapes |= _mlp("itm_head_m", 2) | _linear("patch_head", 1, D) | {"UtilsB": (), "UtilsC": ()}
    return shapes | {"cap_queue": (E, QUEUE), "prom_queue": (E, QUEUE)}


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}
    for key in [k for k in state if k.endswith("position_ids")]:
        state[key] = torch.arange(MAXPOS)[None]
    state["queue_ptr"] = torch.tensor([5])
    state["temp"] = torch.tensor(0.07)
    return state


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def hammer(workdir: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """An official HAMMER checkpoint file, as its train.py saves it ({'model': ..., 'epoch': ...})."""
    state = random_state(hammer_shapes())
    path = workdir / "checkpoint_best.pth"
    torch.save({"model": state, "epoch": 49, "config": {"image_res": 64, "queue_size": QUEUE}}, path)
    return path, state


@pytest.fixture(scope="module")
def converted(workdir: Path, hammer: tuple[Path, dict[str, torch.Tensor]]) -> tuple[Path, object]:
    dst = workdir / "hammer.ckpt"
    report = import_checkpoint("hammer", hammer[0], dst, TINY)
    return dst, report


def load(path: Path):  # noqa: ANN201
    from asap.models import ASAPLitModule

    return ASAPLitModule.load_from_checkpoint_safely(path)


def test_every_hammer_tensor_is_mapped(
    converted: tuple[Path, object], hammer: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    _, report = converted
    state = hammer[1]
    assert report.unmapped == [] and report.missing == []
    assert {k for k, _ in report.dropped} == {
        f"{t}.bert.embeddings.position_ids" for t in ("text_encoder", "text_encoder_m")
    }
    used = {k for k, _ in report.mapped} | {k for k, _ in report.dropped}
    used |= {how.split(":")[0] for _, how in report.derived if ":" in how}  # the in_proj tensors
    assert used == set(state)


def test_hammer_tensors_land_in_the_right_modules(
    converted: tuple[Path, object], hammer: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    model, state = load(converted[0]).model, hammer[1]
    eq = torch.testing.assert_close
    eq(model.binary_head[6].weight, state["itm_head.6.weight"])
    eq(model.multilabel_head[3].bias, state["cls_head.3.bias"])
    eq(model.box_head[6].weight, state["bbox_head.6.weight"])
    eq(model.token_head[4].weight, state["text_encoder.classifier.4.weight"])
    eq(model.momentum["token_head"][6].bias, state["text_encoder_m.classifier.6.bias"])
    vb = model.vision_biased_encoder
    eq(vb.aggregator_query, state["cls_token_local"])
    eq(vb.cross_attention_norm.weight, state["norm_layer_it_cross_atten.weight"])
    eq(vb.cross_attention.key.weight, state["it_cross_attn.in_proj_weight"][D : 2 * D])
    eq(vb.aggregator.value.bias, state["aggregator.in_proj_bias"][2 * D :])
    eq(vb.aggregator.output.weight, state["aggregator.out_proj.weight"])
    fusion = model.momentum["text_biased_encoder"].layers[1]
    eq(
        fusion.cross_attention.query.weight,
        state["text_encoder_m.bert.encoder.layer.3.crossattention.self.query.weight"],
    )
    eq(model.momentum.text_queue, state["text_queue"].T)
    assert int(model.momentum.queue_ptr) == 5
    eq(model.alignment.temperature, state["temp"])


def official_lpaa(
    state: dict[str, torch.Tensor], image: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, asap: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """HAMMER's LPAA (or ASAP's, with its Multilmodelattention) in `forward(is_train=False)`, on the official
    tensors with torch's nn.MultiheadAttention -> (normalised patches (B, N, D), pooled F_v (B, D))."""

    def official(name: str, module: nn.Module) -> nn.Module:
        prefix = name + "."
        module.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        return module.eval()

    def attention(name: str) -> nn.Module:
        return official(name, nn.MultiheadAttention(D, HEADS, batch_first=True))

    norm_cross = official("norm_layer_it_cross_atten", nn.LayerNorm(D))
    norm_aggr = official("norm_layer_aggr", nn.LayerNorm(D))
    query, keys = norm_cross(image), norm_cross(text)  # (B, 1+N, D), (B, L, D)
    if asap:  # self-attention over the image, cross-attention to the text, residual on the normalised image
        x = attention("it_cross_attn.selfatten")(query, query, query)[0]
        fused = query + attention("it_cross_attn.crossatten")(x, keys, keys, key_padding_mask=mask == 0)[0]
    else:
        fused = image + attention("it_cross_attn")(query, keys, keys, key_padding_mask=mask == 0)[0]
    patches = norm_aggr(fused[:, 1:])  # (B, N, D)
    cls_local = norm_aggr(state["cls_token_local"].expand(image.shape[0], -1, -1))  # (B, 1, D)
    return patches, attention("aggregator")(cls_local, patches, patches)[0].squeeze(1)


def assert_lpaa_matches(model: nn.Module, state: dict[str, torch.Tensor], asap: bool) -> None:
    g = torch.Generator().manual_seed(1)
    image, text = torch.randn(3, 1 + GRID * GRID, D, generator=g), torch.randn(3, 7, D, generator=g)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0  # padding in one text
    with torch.no_grad():
        patches, pooled = official_lpaa(state, image, text, mask, asap)
        ours = model.vision_biased_encoder(image, text, mask)
    torch.testing.assert_close(ours.pooled, pooled, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours.patches, patches, atol=1e-6, rtol=1e-5)


def test_vision_biased_encoder_computes_what_hammers_lpaa_computes(
    converted: tuple[Path, object], hammer: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    """HAMMER's LPAA with torch's nn.MultiheadAttention == ours after the in_proj split."""
    assert_lpaa_matches(load(converted[0]).model, hammer[1], asap=False)


def test_import_then_export_returns_the_same_tensors(
    converted: tuple[Path, object], hammer: tuple[Path, dict[str, torch.Tensor]], workdir: Path
) -> None:
    out = workdir / "exported.pth"
    report = export_checkpoint("hammer", converted[0], out)
    assert report.unmapped == []
    exported, state = torch.load(out, weights_only=True)["model"], hammer[1]
    assert sorted(exported) == sorted(state)
    for key, value in state.items():
        assert exported[key].dtype == value.dtype and torch.equal(exported[key], value), key


def test_export_then_import_is_the_identity_and_gives_the_same_outputs(workdir: Path) -> None:
    """A model of ours (random init) -> official layout -> ours again: every tensor and every output equal."""
    from asap.models import ASAPLitModule
    from asap.pipeline.common import container
    from asap.pipeline.convert import save_checkpoint

    cfg = compose_config("hammer", TINY)
    torch.manual_seed(3)
    source = ASAPLitModule(**{k: container(cfg[k]) for k in ("model", "loss", "ablation", "optim")})
    ours, official, back = workdir / "ours.ckpt", workdir / "ours_official.pth", workdir / "ours_back.ckpt"
    save_checkpoint(source.eval(), ours)
    export_checkpoint("hammer", ours, official)
    import_checkpoint("hammer", official, back, TINY)
    again = load(back)
    expected = source.state_dict()
    assert sorted(again.state_dict()) == sorted(expected)
    for key, value in again.state_dict().items():
        assert torch.equal(value, expected[key]), key
    batch = make_batch(B=4, L=12, image_size=64, patch_size=PATCH, vocab=VOCAB, aux=())
    with torch.no_grad():
        a, b = source(batch, compute_losses=False), again(batch, compute_losses=False)
    for name in ("binary_logits", "multilabel_logits", "box_pred", "token_logits"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=0, rtol=0)


@pytest.mark.parametrize(
    "break_it, named",
    [
        (lambda s: s.pop("aggregator.out_proj.bias"), "vision_biased_encoder.aggregator.output.bias"),
        (lambda s: s.update({"bbox_head.6.weight": torch.zeros(3, 2 * D)}), "bbox_head.6.weight"),
        (
            lambda s: s.update({"it_cross_attn.in_proj_bias": torch.zeros(2 * D)}),
            "it_cross_attn.in_proj_bias",
        ),
        (lambda s: s.update({"extra_head.weight": torch.zeros(2)}), "extra_head.weight"),
    ],
    ids=["missing", "misshaped", "misshaped_in_proj", "unknown"],
)
def test_a_missing_or_misshaped_tensor_stops_the_conversion_naming_it(
    hammer: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, break_it, named: str
) -> None:
    state = dict(hammer[1])
    break_it(state)
    src, dst = tmp_path / "broken.pth", tmp_path / "broken.ckpt"
    torch.save({"model": state}, src)
    with pytest.raises(ConversionError, match="do not map") as info:
        import_checkpoint("hammer", src, dst, TINY)
    assert named in str(info.value) and not dst.exists()
    import_checkpoint("hammer", src, dst, TINY, allow_missing=True)  # written anyway when asked
    assert dst.exists()


@pytest.fixture(scope="module")
def asap_import() -> tuple[dict[str, torch.Tensor], nn.Module, object]:
    """An ASAP-layout state dict imported into the `asap` preset's model (the official mode where it exists)."""
    from asap.models import ASAPLitModule
    from asap.models.official_keys import import_official
    from asap.models.text_encoder import bert_config
    from asap.pipeline.common import container

    state = random_state(asap_shapes())
    cfg = compose_config("asap", TINY)
    hparams = {k: container(cfg[k]) for k in ("model", "loss", "ablation", "optim")}
    model = ASAPLitModule(**hparams, load_pretrained=False).model.eval()
    text = model.cfg.text_encoder
    values, report = import_official(
        state, "asap", model.state_dict(), text.text_layers, bert_config(text).num_hidden_layers
    )
    model.load_state_dict(values, strict=False)
    return state, model, report


def test_asap_layout_maps_every_tensor_in_official_mode(
    asap_import: tuple[dict[str, torch.Tensor], nn.Module, object],
) -> None:
    """Every ASAP tensor has a target in the `asap` preset's model (official mode), and every target a source."""
    state, _, report = asap_import
    mapped = dict(report.mapped)
    assert mapped["UtilsB"] == "delta" and mapped["patch_head.weight"] == "patch_head.weight"
    assert mapped["cap_queue"] == "momentum.caption_queue"
    assert mapped["prom_queue"] == "momentum.explanation_queue"
    cross = mapped["it_cross_attn.crossatten.out_proj.weight"]
    assert cross == "vision_biased_encoder.cross_attention.output.weight"
    assert mapped["UtilsC"] == "multilabel_delta" and mapped["itm_head_m.6.bias"] == "ied_head.6.bias"
    assert (
        mapped["it_cross_attn.selfatten.out_proj.bias"] == "vision_biased_encoder.self_attention.output.bias"
    )
    assert not report.unmapped and not report.missing


def test_asap_vision_block_computes_what_multilmodelattention_computes(
    asap_import: tuple[dict[str, torch.Tensor], nn.Module, object],
) -> None:
    state, model, _ = asap_import
    assert_lpaa_matches(model, state, asap=True)


# What each official model computes (models/HAMMER.py, models/ASAP.py, their train.py's loss weights): the model
# `convert.py hammer|asap` builds must be this one, or the official weights would run in another graph.
OFFICIAL_MODELS = {
    "hammer": dict(
        vision_block="hammer",  # it_cross_attn: I + CrossAttn(LN(I), LN(T))
        modality="text",  # itm_head(t_cls), cls_head(t_cls): no pooled box feature, no Utils* scalar
        scalars=(False, False),
        ied_outputs=None,
        patch_head=False,
        queues={"image", "text"},
        weights=dict(itc=0.1, bic=1.0, mlc=1.0, bbox=0.1, giou=0.1, tmg=1.0),
    ),
    "asap": dict(
        vision_block="asap",  # Multilmodelattention: self-attention on LN(I), cross-attention, residual on LN(I)
        modality="both",  # itm_head(t_cls + UtilsB F_v), cls_head(t_cls + UtilsC F_v)
        scalars=(True, True),
        ied_outputs=2,  # itm_head_m: 2-way
        patch_head=True,
        queues={"image", "text", "caption", "explanation"},  # + cap_queue, prom_queue
        weights=dict(
            itc=0.1, lma=0.1, bic=1.0, mlc=1.0, bbox=0.1, giou=0.1, tmg=1.0, alpha=0.1, lambda_=0.01
        ),
    ),
}


@pytest.mark.parametrize("source", sorted(OFFICIAL_MODELS))
def test_the_converter_presets_build_the_official_models(source: str) -> None:
    """`convert.py hammer|asap`'s config composes to the official model: vision block, the heads' input and
    scalars, IED and PMM heads, momentum with the official queues, the official-mode loss forms and train.py's
    weights, every defect off."""
    from asap.models import ASAPLitModule
    from asap.pipeline.common import container

    expected = OFFICIAL_MODELS[source]
    cfg = compose_config(source, TINY)
    module = ASAPLitModule(**{k: container(cfg[k]) for k in ("model", "loss", "ablation", "optim")})
    model, loss = module.model, module.config.loss
    assert model.cfg.vision_block == expected["vision_block"]
    assert (model.vision_biased_encoder.self_attention is not None) == (expected["vision_block"] == "asap")
    assert model.ablation.modality == expected["modality"]
    assert (model.delta is not None, model.multilabel_delta is not None) == expected["scalars"]
    assert (model.ied_head[-1].out_features if model.ied_head is not None else None) == expected[
        "ied_outputs"
    ]
    assert (model.patch_head is not None) == expected["patch_head"]
    assert model.momentum is not None
    assert {k.removesuffix("_queue") for k, _ in model.momentum.named_buffers() if k.endswith("_queue")} == (
        expected["queues"]
    )
    assert loss.contrastive_form == "official" and not any(vars(loss.defects).values())
    weights = module.loss_weights
    assert {k: getattr(weights, k) for k in expected["weights"]} == expected["weights"]
    if source == "asap":
        assert (loss.ied_form, loss.pmm_form, loss.mgca.form) == ("official",) * 3
        assert list(loss.mgca.layers) == [-1] and cfg.data.aux_final_sep is False
    g = torch.Generator().manual_seed(0)
    pooled, text_cls = torch.randn(3, D, generator=g), torch.randn(3, D, generator=g)
    with torch.no_grad():  # the heads' input: t_cls alone (HAMMER) or t_cls + UtilsB / UtilsC * F_v (ASAP)
        joint = model.heads_input(pooled, text_cls)
        joint_multilabel = model.heads_input(pooled, text_cls, model.multilabel_delta)
    if source == "hammer":
        assert torch.equal(joint, text_cls) and torch.equal(joint_multilabel, text_cls)
    else:
        torch.testing.assert_close(joint, model.delta * pooled + text_cls)
        torch.testing.assert_close(joint_multilabel, model.multilabel_delta * pooled + text_cls)


def test_cli_reports_every_key_and_exits_2_naming_what_does_not_map(
    hammer: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python src/convert.py hammer SRC DST overrides` (its `main`): complete report lines off a terminal."""
    convert = load_script("convert.py")
    dst = tmp_path / "cli.ckpt"
    assert convert.main(["hammer", str(hammer[0]), str(dst), *TINY]) == 0
    out = capsys.readouterr().out
    assert (
        "mapped    it_cross_attn.out_proj.weight  ->  vision_biased_encoder.cross_attention.output.weight\n"
        in out
    )
    assert (
        "derived   vision_biased_encoder.aggregator.key.bias  ->  aggregator.in_proj_bias: the key rows"
        in out
    )
    assert "dropped   text_encoder_m.bert.embeddings.position_ids  ->  constant buffer" in out
    assert convert.main(["hammer", str(dst), str(tmp_path / "back.pth"), "--to-official"]) == 0
    assert (
        "derived   it_cross_attn.in_proj_weight  ->  query, key, value rows joined" in capsys.readouterr().out
    )
    state = dict(hammer[1])
    state.pop("cls_token_local")
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(SystemExit) as info:
        convert.main(["hammer", str(tmp_path / "broken.pth"), str(tmp_path / "broken.ckpt"), *TINY])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 2 and "ConversionError" in out
    assert "vision_biased_encoder.aggregator_query" in out
    with pytest.raises(SystemExit) as info:  # a model option that does not exist
        convert.main(["hammer", str(hammer[0]), str(tmp_path / "x.ckpt"), "model=no_such_model"])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 2 and "UserError" in out and "no_such_model" in out
    with pytest.raises(SystemExit) as info:  # one of ours given as the official file
        convert.main(["hammer", str(dst), str(tmp_path / "again.ckpt"), *TINY])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 2 and "CheckpointError" in out and "--to-official exports it" in out


# ---------------------------------------------------------------------------------------------------- eval / predict

# an odd-sized test split: the distributed sampler pads each rank's share with a repeated sample
DATA = ["data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.num_test=15"]
DATA += ["data.num_workers=0", "data.validate_workers=1", "data.eval_batch_size=4"]


def eval_overrides(workdir: Path, ckpt: Path) -> list[str]:
    return [
        f"ckpt_path={ckpt}",
        f"paths.log_dir={workdir / 'logs'}",
        f"paths.data_dir={workdir / 'data'}",
        *DATA,
    ]


@pytest.fixture(scope="module")
def one_process(workdir: Path, converted: tuple[Path, object]) -> Path:
    """src/eval.py's job in-process on the converted checkpoint."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from asap.pipeline.evaluate import evaluate

    out = workdir / "eval_one"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "eval",
            [*eval_overrides(workdir, converted[0]), f"paths.output_dir={out}", f"paths.work_dir={workdir}"],
        )
    evaluate(cfg)
    return out


def test_eval_runs_on_the_converted_checkpoint(one_process: Path) -> None:
    report = json.loads((one_process / "metrics.json").read_text())
    assert report["num_samples"] == 15 and report["model"]["image_encoder"]["stem"] == "patch"
    assert report["ablation"]["modality"] == "text"  # hammer_baseline: the heads read t_cls as HAMMER's
    assert 0.0 <= report["test"]["AUC"] <= 100.0


def test_predict_runs_on_the_converted_checkpoint(converted: tuple[Path, object], tmp_path: Path) -> None:
    from PIL import Image

    from asap.inference import Pair, Predictor

    Image.new("RGB", (90, 60), (120, 80, 40)).save(tmp_path / "a.jpg")
    predictor = Predictor.from_checkpoint(converted[0])
    (prediction,) = predictor.predict([Pair(tmp_path / "a.jpg", "Anna smiles at the beach.")])
    assert 0.0 <= prediction.verdict.fake_probability <= 1.0


@pytest.mark.slow
def test_ddp_eval_with_two_processes_equals_one_process(
    workdir: Path, converted: tuple[Path, object], one_process: Path
) -> None:
    out = workdir / "eval_ddp"
    env = {**os.environ, "COLUMNS": "250", "OMP_NUM_THREADS": "1"}
    args = [*eval_overrides(workdir, converted[0]), "trainer=ddp_cpu", f"hydra.run.dir={out}"]
    run = run_script("eval.py", *args, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "MEMBER: 2/2" in run.stderr  # two processes took part
    single, ddp = (json.loads((d / "metrics.json").read_text()) for d in (one_process, out))
    assert ddp["num_samples"] == 15
    assert set(ddp["test"]) == set(single["test"])
    for name, value in single["test"].items():
        assert ddp["test"][name] == pytest.approx(value, abs=1e-9, nan_ok=True), name
    from asap.metrics.predictions import load_predictions

    arrays = load_predictions(out / "predictions_test.npz")
    assert sorted(arrays["index"].tolist()) == list(range(15))  # each record once, the padding dropped
    reference = load_predictions(one_process / "predictions_test.npz")
    order = np.argsort(arrays["index"])
    np.testing.assert_allclose(arrays["binary_logits"][order], reference["binary_logits"], atol=1e-6)


@pytest.fixture(scope="module")
def converted_asap(workdir: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """An ASAP-layout file converted by `convert.py asap` at the tiny sizes (official mode, every tensor mapped)."""
    state = random_state(asap_shapes(), seed=2)
    state["UtilsB"], state["UtilsC"] = torch.tensor(0.3), torch.tensor(-0.7)
    src, dst = workdir / "asap_official.pth", workdir / "asap.ckpt"
    torch.save({"model": state, "epoch": 49}, src)
    report = import_checkpoint("asap", src, dst, TINY)
    assert not report.unmapped and not report.missing
    return dst, state


def test_eval_and_predict_run_on_a_converted_asap_checkpoint_in_official_mode(
    workdir: Path, converted_asap: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    """src/eval.py and the predictor read ASAP's converted weights into ASAP's graph (its block, both scalars)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from PIL import Image

    from asap.inference import Pair, Predictor
    from asap.pipeline.evaluate import evaluate

    ckpt, state = converted_asap
    model = load(ckpt).model
    assert model.delta.item() == pytest.approx(0.3) and model.multilabel_delta.item() == pytest.approx(-0.7)
    torch.testing.assert_close(
        model.vision_biased_encoder.self_attention.query.weight,
        state["it_cross_attn.selfatten.in_proj_weight"][:D],
    )
    out = tmp_path / "eval_asap"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "eval", [*eval_overrides(workdir, ckpt), f"paths.output_dir={out}", f"paths.work_dir={workdir}"]
        )
    evaluate(cfg)
    report = json.loads((out / "metrics.json").read_text())
    assert report["num_samples"] == 15 and report["ablation"]["modality"] == "both"
    assert report["model"]["vision_block"] == "asap" and report["model"]["multilabel_delta"] is True
    from asap.metrics.predictions import load_predictions

    assert np.isfinite(load_predictions(out / "predictions_test.npz")["multilabel_logits"]).all()
    Image.new("RGB", (90, 60), (120, 80, 40)).save(tmp_path / "a.jpg")
    (prediction,) = Predictor.from_checkpoint(ckpt).predict(
        [Pair(tmp_path / "a.jpg", "Anna smiles at the beach.")]
    )
    assert 0.0 <= prediction.verdict.fake_probability <= 1.0
