"""Official mode (conf/mode/official.yaml) against re-computations written from the official code's formulas.

Each reference below follows the lines of ASAP's models/ASAP.py (CriliasMiller/ASAP; HAMMER's models/HAMMER.py for
loss_MAC) in their own layout: queues (E, K), `feat_all = cat([feat_m.t(), queue])`, the momentum update
`p_m = p_m * m + p * (1 - m)` before the momentum features, nn.MultiheadAttention for Multilmodelattention and the
aggregator, attentionMapGT built with its `for pos in fake_text_pos` loop. The micro model runs in eval mode
(dropout off) with `compute_losses=True`, with momentum encoders and queues; each defect switch is checked to change
exactly its own term.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from asap.data.text import encode_aux
from asap.errors import ConfigError
from asap.losses import LossWeights, total_loss
from asap.models import ASAPModel
from asap.models.asap import encode_texts
from asap.models.config import ASAPConfig
from asap.models.packing import Packing
from helpers import CONF, _dm, _write_cache, conf, make_batch, micro_model

ALPHA, DECAY, QUEUE = 0.4, 0.995, 12
DEFECTS = {  # switch -> the one term it changes
    "i2p_target_typo": "aux_vlc",
    "aux_queues_from_text": "aux_vlc",
    "mgca_batch_tokens": "mgca",
    "mgca_cls_shift": "mgca",
    "mgca_padding": "mgca",
    "pmm_ignored_log2": "pmm",
}
OFFICIAL_TERMS = {"mac", "aux_vlc", "ied", "mgca", "pmm", "bic", "mlc", "bbox", "giou", "tmg"}


def official_mode() -> dict[str, Any]:
    return yaml.safe_load((CONF / "mode" / "official.yaml").read_text())


def official_config(ablation: str = "full", momentum: bool = True, **defects: bool) -> ASAPConfig:
    mode = official_mode()
    loss = conf("loss", "default")
    mgca = {**loss["mgca"], **mode["loss"].pop("mgca")}
    loss.update(mode["loss"], mgca=mgca, defects={**loss["defects"], **defects})
    model = micro_model(
        **mode["model"],
        momentum={"enabled": momentum, "queue_size": QUEUE, "decay": DECAY, "distill_alpha": ALPHA},
    )
    return ASAPConfig.from_plain(model, loss, conf("ablation", ablation), {})


def build(ablation: str = "full", momentum: bool = True, seed: int = 0, **defects: bool) -> ASAPModel:
    torch.manual_seed(seed)
    cfg = official_config(ablation, momentum, **defects)
    model = ASAPModel(cfg.model, cfg.loss, cfg.ablation).eval()  # dropout off
    with torch.no_grad():
        if (
            model.multilabel_delta is not None
        ):  # learnt scalars away from their shared init, so a mix-up shows
            model.delta.fill_(0.7)
            model.multilabel_delta.fill_(-0.3)
        # MGCA's scores of order 1 (at init they are ~0.02, every BCE term ~log 2 whatever its target)
        model.text_biased_encoder.layers[-1].cross_attention.query.weight.mul_(30)
    return model


def step(model: ASAPModel, batch: dict[str, Any]) -> dict[str, Tensor]:
    return model(batch, compute_losses=True, distill_weight=ALPHA).losses


# ---------------------------------------------------------------- references from the official code
def soft_ce(sim: Tensor, targets: Tensor) -> Tensor:
    return -torch.sum(F.log_softmax(sim, dim=1) * targets, dim=1).mean()


def momentum_after_update(model: ASAPModel) -> nn.ModuleDict:
    """A copy of the momentum encoders after ASAP's _momentum_update (run before the momentum features)."""
    copies = copy.deepcopy(model.momentum.copies)
    for name, online in model.momentum_pairs().items():
        for param, param_m in zip(online.parameters(), copies[name].parameters(), strict=True):
            param_m.data = param_m.data * DECAY + param.data * (1.0 - DECAY)
    return copies


def features(image_encoder: nn.Module, text_encoder: nn.Module, alignment: nn.Module, batch: dict) -> dict:
    """Unit [CLS] features of image, text, caption, explanation: normalize(proj(embeds[:, 0]))."""
    texts = encode_texts(text_encoder, batch, ["caption", "explanation"], cls_only=())
    image = F.normalize(alignment.vision_proj(image_encoder(batch["image"])[:, 0]), dim=-1)
    feats = {"image": image}
    for kind, text in texts.items():
        feats[kind] = F.normalize(alignment.text_proj(text.embeds[:, 0]), dim=-1)
    return feats


def reference_vlc(model: ASAPModel, batch: dict, i2p_typo: bool = False) -> dict[str, Tensor]:
    """ASAP models/ASAP.py l. 185-303 (loss_MAC, loss_eT) and l. 488-507 (queues), before the model's step."""
    tau = model.alignment.temperature  # self.temp, clamped in place first (l. 180)
    with torch.no_grad():
        tau.clamp_(0.001, 0.5)
        queues = {kind: getattr(model.momentum, f"{kind}_queue").T.clone() for kind in ("image", "text")}
        queues["cap"] = model.momentum.caption_queue.T.clone()  # (E, K)
        queues["prom"] = model.momentum.explanation_queue.T.clone()
        mom = momentum_after_update(model)
        feats_m = features(mom["image_encoder"], mom["text_encoder"], mom["alignment"], batch)
    feats = features(model.image_encoder, model.text_encoder, model.alignment, batch)
    image_feat, text_feat, cap_feat, prom_feat = (
        feats[k] for k in ("image", "text", "caption", "explanation")
    )
    real = torch.nonzero(batch["binary_label"] == 0).squeeze(1)
    with torch.no_grad():
        image_feat_m, text_feat_m = feats_m["image"], feats_m["text"]
        cap_feat_m, prom_feat_m = feats_m["caption"], feats_m["explanation"]
        image_feat_all = torch.cat([image_feat_m.t(), queues["image"]], dim=1)
        text_feat_all = torch.cat([text_feat_m.t(), queues["text"]], dim=1)
        sim_i2t_m, sim_t2i_m = image_feat_m @ text_feat_all / tau, text_feat_m @ image_feat_all / tau
        sim_targets = torch.zeros(sim_i2t_m.size())
        sim_targets[real, real] = 1
        sim_targets_g2g = torch.zeros(sim_i2t_m.size())
        sim_targets_g2g.fill_diagonal_(1)
        sim_i2t_targets = ALPHA * F.softmax(sim_i2t_m, dim=1) + (1 - ALPHA) * sim_targets
        sim_t2i_targets = ALPHA * F.softmax(sim_t2i_m, dim=1) + (1 - ALPHA) * sim_targets
        cap_feat_all = torch.cat([cap_feat_m.t(), queues["cap"]], dim=1)
        sim_i2c_m, sim_c2i_m = image_feat_m @ cap_feat_all / tau, cap_feat_m @ image_feat_all / tau
        sim_targets_c = torch.zeros(sim_i2c_m.size())
        sim_targets_c.fill_diagonal_(1)
        sim_i2c_targets = ALPHA * F.softmax(sim_i2c_m, dim=1) + (1 - ALPHA) * sim_targets_c
        sim_c2i_targets = ALPHA * F.softmax(sim_c2i_m, dim=1) + (1 - ALPHA) * sim_targets_c
        prom_feat_all = torch.cat([prom_feat_m.t(), queues["prom"]], dim=1)
        sim_i2p_m, sim_p2i_m = image_feat_m @ prom_feat_all / tau, prom_feat_m @ image_feat_all / tau
        sim_targets_p = torch.zeros(sim_i2p_m.size())
        sim_targets_p[real, real] = 1
        i2p_soft = sim_p2i_m if i2p_typo else sim_i2p_m  # l. 262 uses sim_p2i_m
        sim_i2p_targets = ALPHA * F.softmax(i2p_soft, dim=1) + (1 - ALPHA) * sim_targets_p
        sim_p2i_targets = ALPHA * F.softmax(sim_p2i_m, dim=1) + (1 - ALPHA) * sim_targets_p
    loss_i2t = soft_ce(image_feat @ text_feat_all / tau, sim_i2t_targets)
    loss_t2i = soft_ce(text_feat @ image_feat_all / tau, sim_t2i_targets)
    loss_i2i = soft_ce(image_feat @ image_feat_all / tau, sim_targets_g2g)
    loss_t2t = soft_ce(text_feat @ text_feat_all / tau, sim_targets_g2g)
    loss_i2p = soft_ce(image_feat @ prom_feat_all / tau, sim_i2p_targets)
    loss_p2i = soft_ce(prom_feat @ image_feat_all / tau, sim_p2i_targets)
    loss_p2p = soft_ce(prom_feat @ prom_feat_all / tau, sim_targets_g2g)
    loss_i2c = soft_ce(image_feat @ cap_feat_all / tau, sim_i2c_targets)
    loss_c2i = soft_ce(cap_feat @ image_feat_all / tau, sim_c2i_targets)
    loss_c2c = soft_ce(cap_feat @ cap_feat_all / tau, sim_targets_g2g)
    return {
        "mac": (loss_i2t + loss_t2i + loss_i2i + loss_t2t) / 4,
        "aux_vlc": (loss_i2c + loss_c2i + loss_c2c + loss_i2p + loss_p2i + loss_p2p) / 6,
        "enqueued": {k: feats_m[k] for k in ("image", "text", "caption", "explanation")},
    }


def torch_attention(ours: nn.Module) -> nn.MultiheadAttention:
    """nn.MultiheadAttention (as ASAP's code uses) holding the weights of one of our MultiHeadAttention."""
    D = ours.query.in_features
    mha = nn.MultiheadAttention(D, ours.num_heads, dropout=0.0, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([ours.query.weight, ours.key.weight, ours.value.weight]))
        mha.in_proj_bias.copy_(torch.cat([ours.query.bias, ours.key.bias, ours.value.bias]))
        mha.out_proj.weight.copy_(ours.output.weight)
        mha.out_proj.bias.copy_(ours.output.bias)
    return mha.eval()


def reference_vision(model: ASAPModel, image_embeds: Tensor, text_embeds: Tensor, mask: Tensor) -> tuple:
    """ASAP l. 310-325: Multilmodelattention on LN(image) / LN(text), then the aggregator -> (local_feat, aggr)."""
    v = model.vision_biased_encoder
    selfatten, crossatten = torch_attention(v.self_attention), torch_attention(v.cross_attention)
    aggregator = torch_attention(v.aggregator)
    query, key = v.cross_attention_norm(image_embeds), v.cross_attention_norm(text_embeds)
    x, _ = selfatten(query, query, query)
    x, _ = crossatten(x, key, key, key_padding_mask=mask == 0)
    local_feat = x + query  # (B, 1+N, D)
    B = image_embeds.shape[0]
    cls_tokens_local = v.aggregator_query.expand(B, -1, -1)
    patches = v.aggregator_norm(local_feat[:, 1:, :])
    aggr = aggregator(v.aggregator_norm(cls_tokens_local), patches, patches)[0].squeeze(1)  # (B, D)
    return local_feat, aggr


def fake_text_pos(token_labels: Tensor) -> list[list[int]]:
    """ASAP's fake_token_pos: per sample, the positions (without [CLS]) of the manipulated word-pieces."""
    return [torch.nonzero(row == 1).squeeze(1).tolist() for row in token_labels]


def last_layer_scores(model: ASAPModel, batch: dict) -> Tensor:
    """output_pos.cross_attentions of the last fusion layer, head mean: (B, L, 1+N), every row computed."""
    image_embeds = model.image_encoder(batch["image"])
    mask = batch["attention_mask"]
    text = model.text_encoder.bert(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
    _, maps = model.text_biased_encoder(text, Packing.of(mask, packed=False), image_embeds, [-1])
    return maps[0].scores


# ---------------------------------------------------------------- tests
def test_official_mode_returns_one_term_per_official_loss() -> None:
    batch = make_batch(B=6, L=10)
    assert set(step(build(), batch)) == OFFICIAL_TERMS
    baseline = build("baseline")  # HAMMER: loss_MAC alone beside its task terms
    assert set(step(baseline, batch)) == {"mac", "bic", "mlc", "bbox", "giou", "tmg"}


def test_mac_and_aux_terms_queues_and_momentum_equal_the_official_code() -> None:
    model, batch = build(), make_batch(B=6, L=10)
    ref = reference_vlc(model, batch)
    ptr = int(model.momentum.queue_ptr)
    losses = step(model, batch)
    assert losses["mac"].item() == pytest.approx(ref["mac"].item(), abs=1e-6)
    assert losses["aux_vlc"].item() == pytest.approx(ref["aux_vlc"].item(), abs=1e-6)
    for kind, feat in ref["enqueued"].items():  # _dequeue_and_enqueue after the losses
        queued = getattr(model.momentum, f"{kind}_queue")[ptr : ptr + 6]
        torch.testing.assert_close(queued, feat, atol=1e-6, rtol=0)
    # a second step reads the queues and momentum state the first one left
    ref = reference_vlc(model, batch)
    losses = step(model, batch)
    assert losses["mac"].item() == pytest.approx(ref["mac"].item(), abs=1e-6)
    assert losses["aux_vlc"].item() == pytest.approx(ref["aux_vlc"].item(), abs=1e-6)


def test_mac_gradient_equals_the_official_code() -> None:
    model, batch = build(), make_batch(B=6, L=10)
    reference = copy.deepcopy(model)
    step(model, batch)["mac"].backward()
    reference_vlc(reference, batch)["mac"].backward()
    for ours, theirs in zip(model.alignment.parameters(), reference.alignment.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, atol=1e-6, rtol=1e-5)


def test_official_step_stores_the_clamped_temperature() -> None:
    """`temp.clamp_(0.001, 0.5)` in place first: the step's terms use 0.5 and 0.5 is what stays (paper: 0.7 stays)."""
    batch = make_batch(B=6, L=10)
    model, at_bound = build(), build()
    with torch.no_grad():
        model.alignment.temperature.fill_(0.7)
        at_bound.alignment.temperature.fill_(0.5)
    losses, expected = step(model, batch), step(at_bound, batch)
    assert model.alignment.temperature.item() == pytest.approx(0.5)
    assert losses["mac"].item() == pytest.approx(expected["mac"].item(), abs=1e-6)
    cfg = ASAPConfig.from_plain(micro_model(), conf("loss", "default"), conf("ablation", "full"), {})
    paper = ASAPModel(cfg.model, cfg.loss, cfg.ablation).eval()
    with torch.no_grad():
        paper.alignment.temperature.fill_(0.7)
    paper(batch, compute_losses=True)
    assert paper.alignment.temperature.item() == pytest.approx(0.7)  # paper mode clamps in use only


def test_i2p_typo_switch_reproduces_the_official_target() -> None:
    model, batch = build(i2p_target_typo=True), make_batch(B=6, L=10)
    ref = reference_vlc(model, batch, i2p_typo=True)
    assert step(model, batch)["aux_vlc"].item() == pytest.approx(ref["aux_vlc"].item(), abs=1e-6)


def test_aux_queues_from_text_switch_copies_the_text_queue_at_init() -> None:
    m = build(aux_queues_from_text=True).momentum
    assert torch.equal(m.caption_queue, m.text_queue) and torch.equal(m.explanation_queue, m.text_queue)
    m = build().momentum
    assert not torch.equal(m.caption_queue, m.text_queue)
    assert torch.allclose(m.caption_queue.norm(dim=1), torch.ones(QUEUE))


def test_vision_block_heads_and_ied_equal_the_official_code() -> None:
    model, batch = build(), make_batch(B=6, L=10)
    losses = step(model, batch)
    with torch.no_grad():
        image_embeds = model.image_encoder(batch["image"])
        texts = encode_texts(model.text_encoder, batch, ["explanation"], cls_only=())
        label = batch["binary_label"]
        # image-text: BIC on itm_head(t_cls + UtilsB aggr), MLC on cls_head(t_cls + UtilsC aggr), bbox on aggr
        _, aggr = reference_vision(model, image_embeds, texts["text"].embeds, batch["attention_mask"])
        fused = model.text_biased_encoder(texts["text"].embeds, texts["text"].packing, image_embeds)[0][:, 0]
        vl_output = model.binary_head(fused + model.delta * aggr)
        output_cls = model.multilabel_head(fused + model.multilabel_delta * aggr)
        output_coord = model.box_head(aggr).sigmoid()
        out = model(batch)
        torch.testing.assert_close(out.binary_logits, vl_output, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.multilabel_logits, output_cls, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.box_pred, output_coord, atol=1e-6, rtol=0)
        assert losses["bic"].item() == pytest.approx(F.cross_entropy(vl_output, label).item(), abs=1e-6)
        mlc = F.binary_cross_entropy_with_logits(output_cls, batch["multilabel"])
        assert losses["mlc"].item() == pytest.approx(mlc.item(), abs=1e-6)
        # IED (l. 353-374): the explanation through the same block, aggregator and fusion layers; itm_head_m
        prom = texts["explanation"]
        _, aggr_m = reference_vision(model, image_embeds, prom.embeds, batch["explanation_mask"])
        fused_m = model.text_biased_encoder(prom.embeds, prom.packing, image_embeds)[0][:, 0]
        vl_output_m = model.ied_head(fused_m + model.delta * aggr_m)  # UtilsB, as the binary head
        assert vl_output_m.shape == (6, 2)
        assert losses["ied"].item() == pytest.approx(F.cross_entropy(vl_output_m, label).item(), abs=1e-6)


def test_pmm_equals_the_official_code_with_and_without_its_defect() -> None:
    batch = make_batch(B=6, L=10)
    with torch.no_grad():
        model = build()
        image_embeds = model.image_encoder(batch["image"])
        texts = encode_texts(model.text_encoder, batch, [], cls_only=())
        local_feat, _ = reference_vision(model, image_embeds, texts["text"].embeds, batch["attention_mask"])
        patch_pre = model.patch_head(
            model.vision_biased_encoder.aggregator_norm(local_feat[:, 1:, :])
        ).squeeze(2)
        gt_patch = batch["patch_labels"].float()  # res_fake_pos_patch: 1 box, 0 ring, -1 elsewhere
        mask = (gt_patch != -1).float()
        official = nn.BCEWithLogitsLoss()(patch_pre * mask, gt_patch * mask)  # get_pre_patch_loss
        ignored = (mask == 0).sum() * torch.log(torch.tensor(2.0)) / mask.numel()
    assert ignored > 0.1  # the batch has ignored cells
    assert step(model, batch)["pmm"].item() == pytest.approx((official - ignored).item(), abs=1e-6)
    assert step(build(pmm_ignored_log2=True), batch)["pmm"].item() == pytest.approx(official.item(), abs=1e-6)


def test_mgca_with_every_defect_equals_the_official_code() -> None:
    batch = make_batch(B=6, L=10)
    model = build(mgca_batch_tokens=True, mgca_cls_shift=True, mgca_padding=True)
    with torch.no_grad():
        scores = last_layer_scores(model, batch)  # (B, L, 1+N)
        text_words = batch["input_ids"].shape[1]
        res_fake_pos = (
            batch["patch_labels"] == 1
        ).float()  # get_res_pos_Attention: 1 on the box, 0 elsewhere
        attentionMapGT = res_fake_pos.unsqueeze(-1).repeat(1, 1, text_words)  # (B, N, L)
        for pos in fake_text_pos(batch["token_labels"]):
            attentionMapGT[:, :, pos] = 1
        pre_attentions_map = scores.permute(0, 2, 1)  # (B, 1+N, L)
        official = nn.BCEWithLogitsLoss()(pre_attentions_map[:, 1:, :], attentionMapGT)
    assert step(model, batch)["mgca"].item() == pytest.approx(official.item(), abs=1e-6)


def test_mgca_without_defects_is_per_sample_on_the_real_tokens() -> None:
    batch = make_batch(B=6, L=10)
    model = build()
    with torch.no_grad():
        scores = last_layer_scores(model, batch)[:, 1:, 1:]  # word tokens x patches (B, L-1, N)
        G = ((batch["token_labels"] == 1)[:, :, None] | (batch["patch_labels"] == 1)[:, None, :]).float()
        real = batch["token_labels"] != -100  # (B, L-1)
        bce = F.binary_cross_entropy_with_logits(scores, G, reduction="none")  # (B, L-1, N)
        expected = bce[real].mean()
    assert step(model, batch)["mgca"].item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_switch_changes_exactly_its_own_term(defect: str) -> None:
    batch = make_batch(B=6, L=10)
    fixed, reproduced = step(build(), batch), step(build(**{defect: True}), batch)
    assert set(fixed) == set(reproduced) == OFFICIAL_TERMS
    for name in OFFICIAL_TERMS:
        delta = abs(fixed[name].item() - reproduced[name].item())
        if name == DEFECTS[defect]:
            assert delta > 1e-4, f"{defect} does not change {name}"
        else:
            assert delta < 1e-5, f"{defect} changes {name} by {delta}"


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_defect_switch_outside_official_mode_is_a_config_error(defect: str) -> None:
    loss = conf("loss", "default")
    loss["defects"] = {**loss["defects"], defect: True}
    with pytest.raises(ConfigError, match=defect):
        ASAPConfig.from_plain(micro_model(), loss, conf("ablation", "full"), {})


def test_official_total_is_asap_train_py_weighting() -> None:
    cfg = official_config()
    terms = {name: torch.tensor(float(i + 2)) for i, name in enumerate(sorted(OFFICIAL_TERMS))}
    t = {k: v.item() for k, v in terms.items()}
    # ASAP train.py: 0.1 loss_vlc (loss_MAC + loss_eT) + BIC + 0.1 bbox + 0.1 giou + TMG + MLC
    #                + 0.1 (MGCA + IED + 0.1 PMM)
    expected = 0.1 * (t["mac"] + t["aux_vlc"]) + t["bic"] + 0.1 * t["bbox"] + 0.1 * t["giou"] + t["tmg"]
    expected += t["mlc"] + 0.1 * (t["mgca"] + t["ied"] + 0.1 * t["pmm"])
    weights = cfg.loss.loss_weights()
    assert isinstance(weights, LossWeights)
    assert total_loss(terms, weights).item() == pytest.approx(expected, rel=1e-6)


def test_official_mode_without_momentum_uses_in_batch_keys() -> None:
    model, batch = build(momentum=False), make_batch(B=6, L=10)
    losses = step(model, batch)
    feats = features(model.image_encoder, model.text_encoder, model.alignment, batch)
    tau = model.alignment.temperature
    img, txt = feats["image"], feats["text"]
    hard = torch.diag((batch["binary_label"] == 0).float())
    eye = torch.eye(6)
    mac = (
        soft_ce(img @ txt.T / tau, hard)
        + soft_ce(txt @ img.T / tau, hard)
        + soft_ce(img @ img.T / tau, eye)
        + soft_ce(txt @ txt.T / tau, eye)
    ) / 4
    assert losses["mac"].item() == pytest.approx(mac.item(), abs=1e-6)


def test_paper_mode_is_the_default_and_official_differs(tokenizer: Any) -> None:
    train = yaml.safe_load((CONF / "train.yaml").read_text())
    defaults = train["defaults"]
    assert {"mode": "paper"} in defaults
    assert defaults.index({"mode": "paper"}) < next(i for i, d in enumerate(defaults) if "experiment" in d)
    cfg = ASAPConfig.from_plain(micro_model(), conf("loss", "default"), conf("ablation", "full"), {})
    assert (cfg.loss.contrastive_form, cfg.loss.ied_form, cfg.loss.pmm_form) == ("paper",) * 3
    assert cfg.loss.mgca.form == "paper" and cfg.model.vision_block == "hammer" and not cfg.model.multilabel_delta
    # auxiliary texts: official mode drops the final [SEP], as text_input_adjust does
    with_sep = encode_aux(tokenizer, "a man speaks at a rally", final_sep=True)
    without = encode_aux(
        tokenizer, "a man speaks at a rally", final_sep=official_mode()["data"]["aux_final_sep"]
    )
    assert with_sep[-1] == tokenizer.sep_token_id and without == with_sep[:-1]


def test_official_aux_texts_reach_the_batch_without_their_final_sep(
    make_dgm4, dgm4_record, tokenizer_dir
) -> None:
    record = dgm4_record(3, "orig", text="Anna smiles at the beach.")
    root = make_dgm4({"train": [record]})
    _write_cache(root, "caption", [(record["image"], record["text"], "A smiling woman, on a beach!")])
    _write_cache(root, "explanation", [(record["image"], record["text"], "Anna is a footballer.")])
    samples = {}
    for final_sep in (True, official_mode()["data"]["aux_final_sep"]):
        dm = _dm(root, tokenizer_dir, load_caption=True, load_explanation=True, aux_final_sep=final_sep)
        samples[final_sep] = dm.build_dataset("train")[0]
    sep = dm.tokenizer.sep_token_id
    for kind in ("caption", "explanation"):
        paper, official = samples[True][f"{kind}_ids"], samples[False][f"{kind}_ids"]
        assert paper[-1] == sep and torch.equal(official, paper[:-1]) and sep not in official.tolist()


def test_momentum_defects_need_momentum() -> None:
    for defect in ("i2p_target_typo", "aux_queues_from_text"):
        with pytest.raises(ConfigError, match="momentum"):
            official_config(momentum=False, **{defect: True})
