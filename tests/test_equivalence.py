"""The model's one implementation gives what the plain references give, losses and gradients included: fused
attention against explicit, the token head on E_mm^t's output against HAMMER's extra pass, one E_t pass for every
text against one pass each, shared image projections, [CLS]-only last layers and packed rows against every row;
bf16 autocast and torch.compile (within stated tolerances); and the pre-resized image cache.

The references are written here, small and plain, and substituted for the model's own step (monkeypatch) where a
whole forward is compared: they are no option of the model."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch._inductor.config as inductor_config
import yaml
from PIL import Image
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

import asap.models.asap as asap_module
from asap.data import DGM4DataModule
from asap.data.image_cache import ImageCache, resize_image
from asap.models.asap import ASAPModel, ASAPOutput
from asap.models.attention import set_fused_attn, use_fused_attn
from asap.models.packing import Packing
from asap.models.text_encoder import EncodedText, TextEncoder, encode_texts
from helpers import build, conf, make_batch, micro_model

OUTPUTS = ("binary_logits", "multilabel_logits", "box_pred", "token_logits")
# bf16 keeps 8 bits of mantissa: on the micro model logits move by ~2e-3; probabilities must agree to 2e-2
BF16_PROB_ATOL = 2e-2
COMPILE_ATOL = 1e-4  # inductor reorders float sums; fp32 results agree to ~1e-7 here


def probabilities(out: ASAPOutput) -> list[torch.Tensor]:
    return [
        out.binary_logits.float().softmax(-1),
        out.multilabel_logits.float().sigmoid(),
        out.box_pred.float(),
        out.token_logits.float().softmax(-1),
    ]


def assert_same_outputs(a: ASAPOutput, b: ASAPOutput, batch: dict, atol: float = 1e-5) -> None:
    """The same predictions; token logits at the text's words (padding positions carry no prediction)."""
    for key in OUTPUTS[:3]:
        torch.testing.assert_close(getattr(a, key), getattr(b, key), atol=atol, rtol=1e-4)
    words = batch["attention_mask"][:, 1:].bool()  # the token head covers the text without [CLS]
    torch.testing.assert_close(a.token_logits[words], b.token_logits[words], atol=atol, rtol=1e-4)


# ---------------------------------------------------------------------- the references
def bert_forward(encoder: TextEncoder, ids: Tensor, mask: Tensor) -> Tensor:
    """BERT's own forward: ids (B, L), mask (B, L) -> (B, L, D), every position computed."""
    return encoder.bert(input_ids=ids, attention_mask=mask).last_hidden_state


def hammer_token_text(model: ASAPModel, batch: dict) -> Tensor:
    """HAMMER's token grounding input: E_t (BERT's forward) and E_mm^t run again from the ids, every row -> (B, L, D)."""
    mask = batch["attention_mask"]
    text = bert_forward(model.text_encoder, batch["input_ids"], mask)  # (B, L, D)
    image = model.image_encoder(batch["image"])  # (B, 1+N, D)
    return model.text_biased_encoder(text, Packing.of(mask, packed=False), image)[0]


def encode_each(
    encoder: TextEncoder,
    batch: dict,
    kinds: Sequence[str],
    cls_only: Collection[str] = ("caption",),
    packed: bool = True,
) -> dict[str, EncodedText]:
    """`encode_texts` with one E_t pass per text."""
    encoded = {}
    for kind in ["text", *kinds]:
        ids, mask = ("input_ids", "attention_mask") if kind == "text" else (f"{kind}_ids", f"{kind}_mask")
        packing = Packing.of(batch[mask], packed)
        (embeds,) = encoder([(batch[ids], packing)], [kind in cls_only])
        encoded[kind] = EncodedText(embeds, packing)
    return encoded


@contextlib.contextmanager
def substituted(target: Any, name: str, value: Any) -> Iterator[None]:
    """`target.name` is `value` within the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(target, name, value)
        yield


def one_pass_each(model: ASAPModel) -> contextlib.AbstractContextManager:
    return substituted(asap_module, "encode_texts", encode_each)


def unshared_projections(model: ASAPModel) -> contextlib.AbstractContextManager:
    return substituted(model, "shared_image", lambda image: None)  # each pass projects the image itself


def every_explanation_row(model: ASAPModel) -> contextlib.AbstractContextManager:
    fuse = model.fuse  # IED reads t_cls^t, row 0 of every row
    return substituted(model, "fuse", lambda *args, cls_only=False, **kwargs: fuse(*args, **kwargs))


def every_caption_row(model: ASAPModel) -> contextlib.AbstractContextManager:
    return substituted(
        asap_module, "encode_texts", lambda *args, **kwargs: encode_texts(*args, **kwargs, cls_only=())
    )


def padding_rows(model: ASAPModel) -> contextlib.AbstractContextManager:
    return substituted(model, "pad_rows", True)  # as with loss.defects.mgca_padding


def assert_reference_is_exact(
    model: nn.Module,
    batch: dict,
    reference: Callable[[ASAPModel], contextlib.AbstractContextManager],
    parameter: torch.Tensor,
    terms: list[str] | None = None,
) -> None:
    """The model as it is, then with `reference` substituted: the same losses (all, or `terms`) and the same
    non-zero gradient of `parameter` from their sum (eval mode: no dropout draws to differ)."""
    results = []
    for context in (contextlib.nullcontext(), reference(model)):
        model.zero_grad()
        with context:
            losses = model(batch, compute_losses=True).losses
        losses = {k: v for k, v in losses.items() if terms is None or k in terms}
        sum(losses.values()).backward()
        results.append(({k: v.detach() for k, v in losses.items()}, parameter.grad.clone()))
    (fast, fast_grad), (slow, slow_grad) = results
    assert fast.keys() == slow.keys() and fast
    for name, value in fast.items():
        torch.testing.assert_close(value, slow[name], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast_grad, slow_grad, atol=1e-6, rtol=1e-4)
    assert fast_grad.abs().sum() > 0


# ---------------------------------------------------------------------- model
def test_fused_attention_equals_the_explicit_path_in_the_whole_model() -> None:
    """`set_fused_attn(False)` before building: every attention explicit (ours, timm's ViT, BERT eager)."""
    assert use_fused_attn()  # the default (ASAP_FUSED_ATTN unset)
    model, batch = build("full").eval(), make_batch(B=4, L=10)
    set_fused_attn(False)
    try:
        explicit_model = build("full").eval()  # the same seed: the same weights
    finally:
        set_fused_attn(True)
    flags = [m.fused_attn for m in explicit_model.modules() if hasattr(m, "fused_attn")]
    assert len(flags) > 4 and not any(flags)  # ours and timm's blocks
    assert explicit_model.text_encoder.bert.config._attn_implementation == "eager"
    assert model.text_encoder.bert.config._attn_implementation == "sdpa"
    with torch.no_grad():
        fused, explicit = model(batch, compute_losses=True), explicit_model(batch, compute_losses=True)
    assert_same_outputs(fused, explicit, batch)
    for name, value in fused.losses.items():
        torch.testing.assert_close(value, explicit.losses[name], atol=1e-5, rtol=1e-4)


def test_token_head_reads_the_fusion_output_once_and_matches_hammers_extra_pass() -> None:
    model, batch = build("full").eval(), make_batch(B=4, L=10)
    calls = []
    model.text_biased_encoder.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        out = model(batch)
        assert len(calls) == 1  # HAMMER's way runs E_t + E_mm^t once more for the token head
        reference = model.token_head(hammer_token_text(model, batch)[:, 1:])  # (B, L-1, 2)
    words = batch["attention_mask"][:, 1:].bool()
    torch.testing.assert_close(out.token_logits[words], reference[words], atol=1e-5, rtol=1e-4)


def test_one_joint_text_pass_gives_each_texts_own_encoding_and_losses() -> None:
    """Text, caption and explanation in one E_t pass: each text's rows as BERT's own forward gives them (its
    [CLS] row alone for a [CLS]-only text), the work of the separate passes, one projection call per layer."""
    model = build("full").eval()
    batch = make_batch(B=4, L=8, aux_len={"caption": 9, "explanation": 20})
    batch["explanation_mask"][2, 11:] = 0
    batch["caption_mask"][0, 5:] = 0
    encoder, kinds = model.text_encoder, ["caption", "explanation"]
    texts = [(batch[f"{k}_ids"], batch[f"{k}_mask"]) for k in kinds]
    texts = [(batch["input_ids"], batch["attention_mask"]), *texts]  # text, caption, explanation
    key_calls = []
    encoder.bert.encoder.layer[0].attention.self.key.register_forward_hook(lambda *_: key_calls.append(1))
    with torch.no_grad():
        for packed in (True, False):
            joint = encoder([(ids, Packing.of(mask, packed)) for ids, mask in texts], [False, True, False])
            for (ids, mask), got, cls_only in zip(texts, joint, [False, True, False], strict=True):
                reference = bert_forward(encoder, ids, mask)  # (B, L, D)
                real = mask.bool()
                if cls_only:
                    assert got.shape == (4, 1, encoder.width)
                    torch.testing.assert_close(got[:, 0], reference[:, 0], atol=1e-5, rtol=1e-4)
                else:
                    assert got.shape == reference.shape  # each text at its own length
                    torch.testing.assert_close(got[real], reference[real], atol=1e-5, rtol=1e-4)
        key_calls.clear()
        with FlopCounterMode(display=False) as joint_count:
            encoded = {"joint": encode_texts(encoder, batch, kinds)}
        assert (
            len(key_calls) == 1
        )  # one pass: the layer's projections run once on the rows of all three texts
        with FlopCounterMode(display=False) as each_count:
            encoded["each"] = encode_each(encoder, batch, kinds)
        assert len(key_calls) == 4
        assert (
            joint_count.get_total_flops() == each_count.get_total_flops()
        )  # attention at each text's own length
        for kind in ["text", *kinds]:
            reference, got = encoded["each"][kind], encoded["joint"][kind]
            assert got.embeds.shape == reference.embeds.shape and torch.equal(got.mask, reference.mask)
            real = reference.mask.bool()[:, : got.embeds.shape[1]]  # real tokens (the caption: its [CLS] row)
            torch.testing.assert_close(got.embeds[real], reference.embeds[real], atol=1e-5, rtol=1e-4)
    embeddings = encoder.bert.embeddings.word_embeddings.weight
    assert_reference_is_exact(model, batch, one_pass_each, embeddings)


def test_shared_image_projections_give_the_same_losses_and_gradients() -> None:
    """IED's image-explanation pass reuses the image-text pass's image keys and values of E_mm^t and image queries
    of E_mm^v (computed once)."""
    model, batch = build("full").eval(), make_batch(B=4, L=10)
    calls = []
    model.vision_biased_encoder.cross_attention.query.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        model(batch, compute_losses=True)
        assert len(calls) == 1
        with unshared_projections(model):
            model(batch, compute_losses=True)
        assert len(calls) == 3
    key = model.text_biased_encoder.layers[0].cross_attention.key.weight
    assert_reference_is_exact(model, batch, unshared_projections, key)
    query = model.vision_biased_encoder.cross_attention.query.weight
    assert_reference_is_exact(model, batch, unshared_projections, query, terms=["ied"])


def test_ied_pass_computes_only_the_cls_row_of_the_last_fusion_layer() -> None:
    """IED reads t_cls^t alone: the [CLS]-only last layer gives the same losses and gradients as all rows."""
    model, batch = build("full").eval(), make_batch(B=4, L=10)
    image = model.image_encoder(batch["image"])
    text = torch.randn(4, 7, model.text_encoder.width)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[1, 5:] = 0  # padding is still masked as a key
    packing = Packing.of(mask)
    every_row, _ = model.text_biased_encoder(text, packing, image)
    cls_row, _ = model.text_biased_encoder(text, packing, image, cls_only=True)
    assert every_row.shape == (4, 7, text.shape[-1]) and cls_row.shape == (4, 1, text.shape[-1])
    torch.testing.assert_close(cls_row[:, 0], every_row[:, 0], atol=1e-5, rtol=1e-4)
    ffn = model.text_biased_encoder.layers[-1].ffn[0].weight  # its gradient from IED comes from the [CLS] row
    assert_reference_is_exact(model, batch, every_explanation_row, ffn, terms=["ied"])


def test_caption_pass_computes_only_the_cls_row_of_e_ts_last_layer() -> None:
    """Eq. 1 reads c_cls alone: the [CLS]-only last E_t layer gives the same row, losses and gradients."""
    model, batch = build("full").eval(), make_batch(B=4, L=10, aux_len={"caption": 9, "explanation": 12})
    ids, mask = batch["caption_ids"], batch["caption_mask"].clone()
    mask[1, 4:] = 0  # padding is still masked as a key
    with torch.no_grad():
        every_row = bert_forward(model.text_encoder, ids, mask)
        (cls_row,) = model.text_encoder([(ids, Packing.of(mask))], cls_only=[True])
        assert encode_texts(model.text_encoder, batch, ["caption"])["caption"].embeds.shape[1] == 1
    assert every_row.shape == (4, 9, model.text_encoder.width) and cls_row.shape == (
        4,
        1,
        model.text_encoder.width,
    )
    torch.testing.assert_close(cls_row[:, 0], every_row[:, 0], atol=1e-5, rtol=1e-4)
    last = model.text_encoder.bert.encoder.layer[-1].output.dense.weight
    assert_reference_is_exact(model, batch, every_caption_row, last)


def test_packed_rows_give_the_padded_values_at_every_real_token() -> None:
    """E_t and E_mm^t on the real tokens only: the same rows (sdpa and eager BERT attention, [CLS]-only too),
    zeros at padding, and the same outputs, losses and gradients as with the padding computed."""
    model, batch = build("full").eval(), make_batch(B=4, L=10, aux_len={"caption": 9, "explanation": 12})
    ids, mask = batch["explanation_ids"], batch["explanation_mask"].clone()
    mask[1, 4:], mask[3, 9:] = 0, 0
    real, packing = mask.bool(), Packing.of(mask)
    image = model.image_encoder(batch["image"]).detach()
    encoder = model.text_encoder
    with torch.no_grad():
        for implementation in ("sdpa", "eager"):
            encoder.bert.config._attn_implementation = implementation
            padded, (packed,) = bert_forward(encoder, ids, mask), encoder([(ids, packing)])  # (B, L, D) each
            torch.testing.assert_close(packed[real], padded[real], atol=1e-5, rtol=1e-4)
            assert packed[~real].abs().max() == 0
            torch.testing.assert_close(
                encoder([(ids, packing)], [True])[0], padded[:, :1], atol=1e-5, rtol=1e-4
            )
        encoder.bert.config._attn_implementation = "sdpa"
        fused, maps = model.text_biased_encoder(
            padded, Packing.of(mask, packed=False), image, map_layers=[-1]
        )
        fused_packed, maps_packed = model.text_biased_encoder(padded, packing, image, map_layers=[-1])
        torch.testing.assert_close(fused_packed[real], fused[real], atol=1e-5, rtol=1e-4)
        assert fused_packed[~real].abs().max() == 0
        torch.testing.assert_close(maps_packed[0].probs[real], maps[0].probs[real], atol=1e-6, rtol=1e-4)
        cls_packed, _ = model.text_biased_encoder(padded, packing, image, cls_only=True)
        torch.testing.assert_close(cls_packed, fused[:, :1], atol=1e-5, rtol=1e-4)
        outputs, flops = {}, {}
        for packed_rows, context in ((True, contextlib.nullcontext()), (False, padding_rows(model))):
            with context, FlopCounterMode(display=False) as counter:
                outputs[packed_rows] = model(batch, compute_losses=True)
            flops[packed_rows] = counter.get_total_flops()
    assert not batch["attention_mask"].all()  # the text has padding
    assert_same_outputs(outputs[True], outputs[False], batch)
    assert flops[True] < flops[False]
    with (
        torch.no_grad()
    ):  # E_t's work follows the real tokens: the padding rows' projections and FFNs are skipped
        with FlopCounterMode(display=False) as packed_count:
            encoder([(ids, packing)])
        with FlopCounterMode(display=False) as padded_count:
            bert_forward(encoder, ids, mask)
    real_share = mask.float().mean().item()  # 0.65 here
    assert packed_count.get_total_flops() <= (real_share + 0.05) * padded_count.get_total_flops()
    fusion_ffn = model.text_biased_encoder.layers[0].ffn[0].weight
    text_ffn = encoder.bert.encoder.layer[0].intermediate.dense.weight
    assert_reference_is_exact(model, batch, padding_rows, text_ffn)
    assert_reference_is_exact(model, batch, padding_rows, fusion_ffn)


def test_padding_rows_are_computed_only_for_the_mgca_padding_defect() -> None:
    loss = conf("loss", "default")
    assert build("full", loss=loss).pad_rows is False
    loss["defects"]["mgca_padding"], loss["mgca"]["form"] = True, "official"
    assert build("full", loss=loss).pad_rows is True


def test_packing_needs_a_real_first_token() -> None:
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="start with a real token"):
        Packing.of(mask)
    packing = Packing.of(torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert packing.rows.tolist() == [0, 1, 3, 4, 5] and packing.cls_rows.tolist() == [0, 2]
    x = torch.arange(6.0).view(2, 3, 1)
    torch.testing.assert_close(
        packing.pad(packing.pack(x)), x * torch.tensor([[1, 1, 0], [1, 1, 1]])[..., None]
    )


def test_bf16_autocast_eval_outputs_are_close_to_fp32() -> None:
    model, batch = build("full").eval(), make_batch(B=6, L=10)
    with torch.no_grad():
        fp32 = model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(batch)
    for a, b in zip(probabilities(fp32), probabilities(bf16), strict=True):
        torch.testing.assert_close(b, a, atol=BF16_PROB_ATOL, rtol=0)


def test_compile_is_a_model_config_key(tmp_path: Path) -> None:
    from asap.models import ASAPLitModule

    module = ASAPLitModule(micro_model(compile=True), conf("loss", "default"), conf("ablation", "full"), {})
    encoders = ("image_encoder", "text_encoder", "vision_biased_encoder", "text_biased_encoder")
    assert all(module.model.get_submodule(n)._compiled_call_impl is not None for n in encoders)
    eager = ASAPLitModule(micro_model(), conf("loss", "default"), conf("ablation", "full"), {})
    assert module.state_dict().keys() == eager.state_dict().keys()  # checkpoints are interchangeable


@pytest.mark.slow
def test_compiled_encoders_give_the_eager_outputs() -> None:
    """torch.compile (inductor, C++ on the CPU) of the encoders: same eval outputs within COMPILE_ATOL."""
    eager, batch = build("full").eval(), make_batch(B=4, L=10)
    compiled = build("full").eval()  # same seed: same weights
    compiled.compile_encoders()
    # vec_isa_ok: inductor takes the CPU's vector ISA from cpuinfo instead of compiling three probe programs
    # (~5 s cold); the same ISA, so the same kernel sources and g++ command lines (the same cache hashes)
    with torch.no_grad(), inductor_config.patch({"cpp.vec_isa_ok": True}):
        assert_same_outputs(eager(batch), compiled(batch), batch, atol=COMPILE_ATOL)


# ---------------------------------------------------------------------- image cache
def _images(root: Path, count: int = 40) -> list[Path]:
    return sorted(root.glob("DGM4/**/*.jpg"))[:count]


def test_flip_and_resize_commute_exactly(synthetic_root: Path) -> None:
    """Why the cache may resize before the train-time flip: PIL's bicubic resize commutes with the flip."""
    for path in _images(synthetic_root):
        image = Image.open(path).convert("RGB")
        for size in (64, 256):
            a = F.horizontal_flip(resize_image(image, size))
            b = resize_image(F.horizontal_flip(image), size)
            assert np.array_equal(np.asarray(a), np.asarray(b)), path


def test_the_cache_serves_the_transform_resize_and_survives_reloads(
    synthetic_root: Path, tmp_path: Path
) -> None:
    cache = ImageCache(tmp_path, 64)
    resize = v2.Resize(
        (64, 64), interpolation=v2.InterpolationMode.BICUBIC, antialias=True
    )  # as the protocol
    for path in _images(synthetic_root, 10):
        original = Image.open(path).convert("RGB")
        for _ in range(2):  # miss, then hit
            image, size = cache.load(path)
            assert size == original.size
            assert np.array_equal(np.asarray(image), np.asarray(resize(original)))
    assert (cache.misses, cache.hits) == (10, 10)


def test_a_changed_source_or_image_size_is_decoded_again(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(source)
    cache = ImageCache(tmp_path / "cache", 16)
    red, _ = cache.load(source)
    Image.new("RGB", (50, 30), (10, 10, 200)).save(source)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new modification time
    blue, size = cache.load(source)
    assert size == (50, 30) and np.asarray(blue)[..., 2].mean() > 150 > np.asarray(red)[..., 2].mean()
    other, _ = ImageCache(tmp_path / "cache", 32).load(source)
    assert other.size == (32, 32) and cache.misses == 2


@pytest.mark.parametrize("split", ["train", "val"])
def test_the_cache_gives_the_same_samples_as_decoding(
    split: str, synthetic_root: Path, tokenizer_dir: str, tmp_path: Path
) -> None:
    """Same random draws -> same tensors: flip and RandAugment act on the cached S x S image as before."""
    common = dict(root=synthetic_root, tokenizer=tokenizer_dir, image_size=64, patch_size=8, num_workers=0)
    plain, cached = DGM4DataModule(**common), DGM4DataModule(**common, image_cache=tmp_path / "cache")
    datasets = []
    for dm in (plain, cached):
        dm.setup("fit")
        datasets.append(dm.datasets[split])
    for i in range(len(datasets[0])):
        for dataset in (datasets[1], datasets[1]):  # cold, then warm
            torch.manual_seed(i)
            expected = datasets[0][i]
            torch.manual_seed(i)
            got = dataset[i]
            for key in ("image", "box", "patch_labels"):
                torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0)
            assert got["orig_size"] == expected["orig_size"] and got["has_box"] == expected["has_box"]
    cache, images = datasets[1].image_cache, {record["image"] for _, record in datasets[1].entries}
    assert (cache.misses, cache.hits) == (
        len(images),
        2 * len(datasets[0]) - len(images),
    )  # decoded once each


def test_image_cache_is_a_data_config_key() -> None:
    for name in ("synthetic", "dgm4"):
        data_conf = yaml.safe_load((Path(__file__).parents[1] / f"conf/data/{name}.yaml").read_text())
        assert data_conf["image_cache"] is None


# ---------------------------------------------------------------------- the benchmark harness itself
@pytest.mark.slow
def test_the_benchmark_harness_runs_and_writes_its_json(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/bench.py end to end at a toy size (no timing asserted: the numbers are the script's job)."""
    import json

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import bench

    out = tmp_path / "bench.json"
    # the tiny model at a quarter of its width and depth, and a small matmul: the harness's code paths, in ~5 s
    vit = {"embed_dim": 64, "depth": 1, "num_heads": 2}
    bert = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
    micro = ["model.image_size=32", "model.embed_dim=32", "model.text_encoder.text_layers=1"]
    micro += [f"model.image_encoder.{k}={v}" for k, v in vit.items()]
    micro += [f"model.text_encoder.bert.{k}={v}" for k, v in bert.items()]
    argv = ["--batch-size", "2", "--repeats", "1", "--fast-repeats", "1", "--warmup", "0", "--data-batches", "1",
            "--fast-paths", "attention", "bf16", "--data-root", str(synthetic_root), "--matmul-size", "256",
            "--lengths", "12,20,30", "12,40,60",
            "--override", "data.synthetic=null", "data.num_workers=0", *micro, "--json", str(out)]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert bench.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out  # off a terminal: every table row on one line, nothing cut
    assert "fused attention (vs all explicit)" in printed and "bf16 autocast (vs fp32)" in printed
    result = json.loads(out.read_text())
    assert result["same_encoders"] is True
    ratios = result["model"]["full_over_baseline"]
    assert ratios["infer_flops"] == 1.0 and ratios["train_flops"] > 1.0  # ASAP's parts cost only in training
    assert {"text_encoder", "fuse_text", "fuse_explanation", "loss.mgca", "loss.ied"} <= set(
        result["terms"]["full"]
    )
    assert set(result["fast_paths"]) == {"attention", "bf16"}  # the user options and fused attention only
    assert result["data"]["loader_over_model"] > 0 and result["machine"]["matmul_tflops"] > 0
    own, short, long = result["flops"]  # the batch as loaded, then the two --lengths settings
    assert own["tokens"] == result["batch"]["tokens"]
    for name in ("baseline", "full"):  # the model section counts the same step on the whole batch of 2
        assert own[name] * 2 == pytest.approx(result["model"][name]["train_gflop"])
    assert short["tokens"] == {"text": 12, "caption": 20, "explanation": 30}
    assert long["tokens"] == {"text": 12, "caption": 40, "explanation": 60}
    assert long["real_tokens"] == long["tokens"]  # every sample that long: the packed rows count them all
    assert short["baseline"] == long["baseline"]  # baseline reads neither caption nor explanation
    assert long["full"] > short["full"] > short["baseline"]
    assert {row["target"] for row in result["targets"]} >= {"full / baseline inference time"}
