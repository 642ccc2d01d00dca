"""ASAPModel behaviour: outputs, loss terms per ablation, compute removed when off, gradients, bf16, overfitting."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc
from torchvision.ops import box_convert, generalized_box_iou_loss

from asap.errors import ConfigError
from asap.models import ASAPModel
from asap.models.alignment import ContrastiveProjection
from asap.models.asap import encode_texts
from asap.models.config import ImageEncoderConfig, ModelConfig
from helpers import ABLATIONS, build, conf, make_batch

DGM_TERMS = {"bic", "mlc", "bbox", "giou", "tmg"}
EXPECTED_TERMS = {
    "full": DGM_TERMS | {"vlc", "ied", "mgca", "pmm"},
    "baseline": DGM_TERMS | {"itc"},
    "lma": DGM_TERMS | {"vlc", "ied"},
    "lma_mgca": DGM_TERMS | {"vlc", "ied", "mgca"},
    "caption_only": DGM_TERMS | {"vlc", "mgca", "pmm"},
    "explanation_only": DGM_TERMS | {"vlc", "ied", "mgca", "pmm"},
    "no_hnp": DGM_TERMS | {"vlc", "ied", "mgca", "pmm"},
    "text_only": DGM_TERMS | {"vlc", "ied", "mgca", "pmm"},
    "image_only": DGM_TERMS | {"vlc", "ied", "mgca", "pmm"},
}


class CallLog:
    """Forward hooks that record, per module name, the batch size of every call (E_t: of every text of every
    `encode` pass), and the explicit attention maps asked for."""

    def __init__(self, model: ASAPModel, names: list[str]) -> None:
        self.rows: dict[str, list[int]] = defaultdict(list)
        self.maps_asked = 0
        for name in names:
            module = model.get_submodule(name)
            module.register_forward_hook(lambda m, args, out, n=name: self.rows[n].append(args[0].shape[0]))
        model.text_encoder.register_forward_hook(  # E_t: the batch size of every text of every pass
            lambda m, args, out: self.rows["text_encoder"].append([ids.shape[0] for ids, _ in args[0]])
        )
        for module in model.text_biased_encoder.modules():
            if type(module).__name__ == "MultiHeadAttention":
                module.register_forward_pre_hook(self._count_maps, with_kwargs=True)

    def _count_maps(self, module: Any, args: tuple, kwargs: dict) -> None:
        self.maps_asked += bool(kwargs.get("return_map"))


def test_outputs_follow_the_contract_in_training_and_eval() -> None:
    model, batch = build(), make_batch(B=6, L=10)
    out = model.train()(batch)
    assert out.binary_logits.shape == (6, 2) and out.multilabel_logits.shape == (6, 4)
    assert out.box_pred.shape == (6, 4) and ((out.box_pred > 0) & (out.box_pred < 1)).all()
    assert out.token_logits.shape == (6, 9, 2)
    assert out.text_to_image_attention.shape == (6, 9, 16)  # MGCA on in training: no [CLS] row / column
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert out.losses == {} and out.text_to_image_attention is None
    with torch.no_grad():
        attention = model(batch, return_attention=True).text_to_image_attention  # for visualisation
    assert attention.shape == (6, 9, 16) and (attention >= 0).all() and (attention.sum(-1) <= 1 + 1e-5).all()


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_each_ablation_returns_exactly_its_terms_finite_and_reaching_every_parameter(ablation: str) -> None:
    model, batch = build(ablation), make_batch(B=6, L=10)
    out = model.train()(batch)
    assert set(out.losses) == EXPECTED_TERMS[ablation]
    for name, value in out.losses.items():
        assert value.ndim == 0 and torch.isfinite(value) and value > 0, name
    sum(out.losses.values()).backward()
    no_grad = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert no_grad == []  # every trainable parameter is used (DDP without find_unused_parameters)
    assert model.image_encoder.vit.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.text_encoder.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_switched_off_parts_are_not_computed() -> None:
    """Rows per call (B = 4), every text in one E_t pass; IED adds a B-row pass (no maps) to both multimodal
    encoders."""
    batch = make_batch(B=4, L=8)  # carries captions and explanations in every case
    names = ["text_biased_encoder", "vision_biased_encoder", "ied_head", "patch_head"]
    # ablation: texts of each E_t pass, rows into E_mm^t, E_mm^v, the IED head, the PMM head; explicit maps
    expected = {
        "full": ([[4, 4, 4]], [4, 4], [4, 4], [4], [4], 1),
        "baseline": ([[4]], [4], [4], [], [], 0),
        "lma": ([[4, 4, 4]], [4, 4], [4, 4], [4], [], 0),
        "caption_only": ([[4, 4]], [4], [4], [], [4], 1),
        "no_ied": ([[4, 4, 4]], [4], [4], [], [4], 1),
    }
    for name, rows in expected.items():
        model = build({**conf("ablation", "full"), "ied": False} if name == "no_ied" else name)
        calls = CallLog(model, [n for n in names if getattr(model, n) is not None])
        model.train()(batch)
        assert (*(calls.rows[n] for n in ["text_encoder", *names]), calls.maps_asked) == rows, name
    baseline = build("baseline")
    assert baseline.ied_head is None and baseline.patch_head is None and baseline.delta is None


def test_inference_of_full_costs_the_same_as_baseline() -> None:
    batch = make_batch(B=4, L=8)
    rows = {}
    for ablation in ("full", "baseline"):
        model = build(ablation).eval()
        calls = CallLog(model, ["text_biased_encoder", "vision_biased_encoder"])
        with torch.no_grad():
            model(batch)
        rows[ablation] = (dict(calls.rows), calls.maps_asked)
    assert (
        rows["full"]
        == rows["baseline"]
        == ({"text_encoder": [[4]], "text_biased_encoder": [4], "vision_biased_encoder": [4]}, 0)
    )


def test_training_forward_predicts_what_inference_predicts() -> None:
    model, batch = build("full"), make_batch(B=6, L=10)
    model.eval()  # no dropout: the ASAP parts (aux texts in the same pass, maps, IED rows) must not change outputs
    with torch.no_grad():
        plain = model(batch)
        training = model(batch, compute_losses=True)
    assert set(training.losses) == EXPECTED_TERMS["full"]
    for key in ("binary_logits", "multilabel_logits", "box_pred", "token_logits"):
        torch.testing.assert_close(getattr(plain, key), getattr(training, key), atol=1e-5, rtol=1e-4)


def test_mgca_forms_and_layers_and_hnp_change_their_terms() -> None:
    batch = make_batch(B=6, L=10)
    loss = conf("loss", "default")
    paper = build("full", loss=loss).train()(batch).losses
    official = (
        build("full", loss={**loss, "mgca": {"form": "official", "layers": [-1]}}).train()(batch).losses
    )
    two_layers = (
        build("full", loss={**loss, "mgca": {"form": "paper", "layers": [0, 1]}}).train()(batch).losses
    )
    no_hnp = build("no_hnp").train()(batch).losses
    assert official["mgca"] != paper["mgca"] and two_layers["mgca"] != paper["mgca"]
    assert no_hnp["pmm"] != paper["pmm"]  # more (easy) negatives
    torch.testing.assert_close(official["bic"], paper["bic"])  # the same model otherwise


@pytest.mark.parametrize("box_samples", ["all", "boxed"])
def test_box_samples_choose_which_pairs_the_box_terms_regress(box_samples: str) -> None:
    batch = make_batch(B=6, L=10)
    boxed = batch["has_box"]
    assert 0 < int(boxed.sum()) < 6  # both kinds in the batch
    out = build("full", loss={**conf("loss", "default"), "box_samples": box_samples}).train()(batch)
    rows = boxed if box_samples == "boxed" else torch.ones_like(boxed)
    pred, target = out.box_pred[rows], batch["box"][rows]  # (M, 4) cx cy w h
    l1 = (pred - target).abs().sum(dim=1).mean()  # supp. §6.1, mean over those rows
    giou = generalized_box_iou_loss(
        box_convert(pred, "cxcywh", "xyxy"), box_convert(target, "cxcywh", "xyxy")
    )
    torch.testing.assert_close(out.losses["bbox"], l1)
    torch.testing.assert_close(out.losses["giou"], giou.mean())


def test_an_unknown_box_samples_choice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="loss.box_samples"):
        build("full", loss={**conf("loss", "default"), "box_samples": "some"})


def test_a_missing_auxiliary_text_is_a_clear_error() -> None:
    model = build("full").train()
    with pytest.raises(ConfigError, match="no `caption_ids`"):
        model(make_batch(aux=("explanation",)))
    build("explanation_only").train()(make_batch(aux=("explanation",)))  # not needed there


def test_bf16_autocast_forward_and_backward() -> None:
    model, batch = build("full"), make_batch(B=4, L=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.train()(batch)
    assert out.binary_logits.dtype == torch.bfloat16
    loss = sum(out.losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert model.image_encoder.vit.patch_embed.proj.weight.grad is not None


def momentum_text_passes(model: ASAPModel, batch: dict) -> list[list[bool]]:
    """One training forward; per E_t pass of the momentum encoder, which texts are computed at [CLS] only."""
    passes = []
    model.momentum["text_encoder"].register_forward_hook(lambda m, args, out: passes.append(list(args[1])))
    model.train()(batch)
    return passes


def test_momentum_encoders_queues_and_distillation() -> None:
    model = build("full", momentum={"enabled": True, "queue_size": 16, "decay": 0.5})
    assert {n for n, _ in model.momentum.named_buffers()} >= {"image_queue", "text_queue", "caption_queue"}
    assert not any(p.requires_grad for p in model.momentum.parameters())
    batch = make_batch(B=4, L=8)
    out = model.train()(batch)
    assert set(out.losses) == EXPECTED_TERMS["full"] and all(torch.isfinite(v) for v in out.losses.values())
    assert int(model.momentum.queue_ptr) == 4
    torch.testing.assert_close(model.momentum.image_queue[:4].norm(dim=1), torch.ones(4))
    with torch.no_grad():  # EMA: after moving the online weights, one step moves the copy half-way
        online = model.alignment.vision_proj.weight
        online.add_(1.0)
        before = model.momentum["alignment"].vision_proj.weight.clone()
        model.momentum.update(model.momentum_pairs())
    torch.testing.assert_close(model.momentum["alignment"].vision_proj.weight, 0.5 * before + 0.5 * online)
    assert momentum_text_passes(model, batch) == [
        [False, True, True]
    ]  # caption, explanation: [CLS] rows only
    ied_only = build({**conf("ablation", "full"), "explanation": False}, momentum={"enabled": True})
    assert momentum_text_passes(ied_only, batch) == [[False, True]]  # no explanation queue: not encoded


def test_the_momentum_temperature_is_not_averaged() -> None:
    """The momentum targets divide by the online tau (HAMMER has no temp_m): the EMA skips the copy's tau."""
    model = build("full", momentum={"enabled": True, "queue_size": 16, "decay": 0.5})
    with torch.no_grad():
        model.alignment.temperature.fill_(0.3)
        model.alignment.text_proj.bias.add_(1.0)
        tau_m, bias_m = (
            model.momentum["alignment"].temperature.clone(),
            model.momentum["alignment"].text_proj.bias.clone(),
        )
    model.momentum.update(model.momentum_pairs())
    torch.testing.assert_close(model.momentum["alignment"].temperature, tau_m)
    torch.testing.assert_close(
        model.momentum["alignment"].text_proj.bias,
        0.5 * bias_m + 0.5 * model.alignment.text_proj.bias.detach(),
    )


def test_a_tiny_model_overfits_a_fixed_batch() -> None:
    """40 steps (~5 s on an idle 2-core CPU) on 8 samples: real/fake and the manipulated tokens are learnt."""
    torch.manual_seed(0)
    model, batch = build("full", seed=1), make_batch(B=8, L=10, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    totals = []
    for _ in range(40):
        optimizer.zero_grad()
        out = model(batch)
        total = sum(out.losses.values())
        total.backward()
        optimizer.step()
        totals.append(total.item())
    model.eval()
    with torch.no_grad():
        out = model(batch)
    auc = binary_auroc(out.binary_logits.softmax(-1)[:, 1], batch["binary_label"])
    labels, pred = batch["token_labels"], out.token_logits.argmax(-1)
    tp = ((pred == 1) & (labels == 1)).sum()
    f1 = 2 * tp / ((pred == 1)[labels != -100].sum() + (labels == 1).sum())
    assert auc == 1.0 and f1 > 0.9, (auc, f1)
    assert totals[-1] < 0.5 * totals[0]


def _mean_pairwise_cosine(unit: torch.Tensor) -> float:
    n = unit.shape[0]
    return float(((unit @ unit.T).sum() - n) / (n * n - n))


def test_centring_the_contrastive_space_lifts_the_from_scratch_collapse() -> None:
    """From scratch every text [CLS] is nearly the same vector; centring spreads them and eq. 1-3 then learn."""
    batch = make_batch(B=8, L=10)
    plain = build("caption_only", center_contrastive=False).eval()
    with torch.no_grad():
        texts = encode_texts(plain.text_encoder, batch, [])["text"].embeds[:, 0]  # (B, D)
        assert _mean_pairwise_cosine(plain.alignment.text(texts)) > 0.999  # the collapse
        plain.alignment.center = True
        assert _mean_pairwise_cosine(plain.alignment.text(texts)) < 0  # zero-mean: spread over the sphere
    final = {}
    for center in (False, True):  # dropout off (eval mode, losses on): the same steps whatever ran before
        model = build("caption_only", center_contrastive=center).eval()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(30):
            loss = model(batch, compute_losses=True).losses["vlc"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        final[center] = loss.item()
    assert final[True] < 0.6 * final[False], final


def test_centred_projection_is_the_unit_vector_of_the_centred_features() -> None:
    proj = ContrastiveProjection(6, 5, 4, temperature=0.07, center=True)
    image, text = torch.randn(3, 6), torch.randn(1, 5)
    raw = proj.vision_proj(image)
    torch.testing.assert_close(proj.image(image), F.normalize(raw - raw.mean(0), dim=-1))
    single = proj.text(text)  # one sample: nothing to centre, still a unit vector
    torch.testing.assert_close(single, F.normalize(proj.text_proj(text), dim=-1))


def test_init_std_sets_the_scale_of_the_new_parts_and_so_of_f_v() -> None:
    """model.init_std scales every part ASAP adds; F_v (pooled E_mm^v) grows with it, F_t (post-LayerNorm) does not."""
    batch, norms = make_batch(B=6, L=10), {}
    for std in (0.02, 0.08):
        model = build("full", init_std=std).eval()
        for layer in (model.box_head[0], model.text_biased_encoder.layers[0].cross_attention.key):
            assert layer.weight.std().item() == pytest.approx(std, rel=0.05)
        with torch.no_grad():
            texts = encode_texts(model.text_encoder, batch, [])
            fused = model.fuse(model.image_encoder(batch["image"]), texts["text"], [])
        norms[std] = (
            fused.pooled_vision.norm(dim=-1).mean().item(),
            fused.text[:, 0].norm(dim=-1).mean().item(),
        )
    assert norms[0.08][0] > 4 * norms[0.02][0]
    assert norms[0.08][1] == pytest.approx(norms[0.02][1], rel=0.1)


def test_the_aggregator_querys_scale_does_not_reach_f_v() -> None:
    """E_mm^v's query keeps HAMMER's std 0.02 at any init_std: it enters through a LayerNorm, so F_v is the same at
    any scale of it but for the LayerNorm's eps (1e-5 next to a variance of 4e-4): init_std sets the other new parts'
    output scale, this std only how far an Adam step turns the query."""
    batch = make_batch(B=4, L=10)
    model = build("full", init_std=0.08).eval()
    encoder = model.vision_biased_encoder
    assert encoder.aggregator_query.std().item() == pytest.approx(0.02, rel=0.3)
    with torch.no_grad():
        image, text = model.image_encoder(batch["image"]), encode_texts(model.text_encoder, batch, [])["text"]
        pooled = encoder(image, text.embeds, text.mask).pooled  # (B, D) F_v
        encoder.aggregator_query.mul_(4.0)
        scaled = encoder(image, text.embeds, text.mask).pooled
    assert ((scaled - pooled).norm(dim=-1) / pooled.norm(dim=-1)).max() < 0.02


def test_init_std_is_derived_from_the_width_unless_given() -> None:
    """0.02 * sqrt(768 / D) to one significant figure: asap_base's 0.02 and tiny's 0.05, as their YAML stated."""
    for width, std in [(768, 0.02), (128, 0.05), (64, 0.07)]:
        model = ModelConfig(image_encoder=ImageEncoderConfig(embed_dim=width))
        assert model.init_std is None and model.new_parts_std == std
        assert (
            ModelConfig(image_encoder=ImageEncoderConfig(embed_dim=width), init_std=0.3).new_parts_std == 0.3
        )
    built = build("full").eval()  # the micro model, width 64
    assert built.box_head[0].weight.std().item() == pytest.approx(0.07, rel=0.05)
