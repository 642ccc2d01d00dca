"""The embedded synthetic DGM4 set: layout, determinism, idempotence, class mix, labels and aux texts."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asap.data import generate_synthetic_dgm4
from asap.data.aux_cache import AuxTextCache
from asap.data.records import FAKE_CLASSES, REQUIRED_FIELDS, is_image_manipulated, multilabel
from asap.data.synthetic.generate import MANIFEST, class_sequence, random_meaning, random_scene
from asap.data.synthetic.render import paste_manipulated, render
from asap.data.synthetic.world import CAST, EMOTION_WORDS, RARE_EMOTION_WORDS
from asap.data.text import clean_text
from asap.data.validate import validate_split_file
from asap.errors import DGM4DataError

SMALL = {"num_train": 30, "num_val": 10, "num_test": 10}
EMOTIONS = {w for vocab in (EMOTION_WORDS, RARE_EMOTION_WORDS) for words in vocab.values() for w in words}
NAMES = {p.name for p in CAST}


def _records(root: Path, split: str) -> list[dict]:
    return json.loads((root / "DGM4" / "metadata" / f"{split}.json").read_text())


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under DGM4/ (paths relative to root)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "DGM4").rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path) -> None:
    a = _digest(generate_synthetic_dgm4(tmp_path / "a", seed=3, **SMALL))
    b = _digest(generate_synthetic_dgm4(tmp_path / "b", seed=3, **SMALL))
    assert a == b and sum(k.endswith(".jpg") for k in a) >= 40
    c = _digest(generate_synthetic_dgm4(tmp_path / "c", seed=4, **SMALL))
    assert c["DGM4/metadata/train.json"] != a["DGM4/metadata/train.json"]


def test_generation_is_idempotent_and_regenerates_on_new_params(tmp_path) -> None:
    root = generate_synthetic_dgm4(tmp_path, **SMALL)
    manifest = root / "DGM4" / MANIFEST
    stamp = manifest.stat().st_mtime_ns
    generate_synthetic_dgm4(tmp_path, **SMALL)
    assert manifest.stat().st_mtime_ns == stamp  # untouched
    generate_synthetic_dgm4(tmp_path, **(SMALL | {"num_val": 12}))
    assert len(_records(root, "val")) == 12 and json.loads(manifest.read_text())["params"]["num_val"] == 12
    assert not list(tmp_path.glob(".DGM4*"))  # no temporary folders left


def _reader(root: Path, params: dict, ready, leave) -> None:  # a run reading the set (another process)
    generate_synthetic_dgm4(root, **params, read=True)
    ready.set()
    leave.wait(60)


def _generator(root: Path, params: dict, errors) -> None:
    try:
        generate_synthetic_dgm4(root, **params)
    except Exception as err:  # reported to the test
        errors.put(repr(err))


def test_a_set_another_run_reads_is_not_replaced_and_the_refusal_names_it(tmp_path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ready, leave = context.Event(), context.Event()
    reader = context.Process(target=_reader, args=(tmp_path, SMALL, ready, leave))
    reader.start()
    try:
        assert ready.wait(60)
        manifest = tmp_path / "DGM4" / MANIFEST
        before = manifest.read_text()
        generate_synthetic_dgm4(tmp_path, **SMALL)  # the same set: fine while it is read
        with pytest.raises(DGM4DataError, match="another run is reading") as refused:
            generate_synthetic_dgm4(tmp_path, **(SMALL | {"seed": 5}))
        assert str(tmp_path / "DGM4") in str(refused.value) and "data.root=" in str(refused.value)
        assert manifest.read_text() == before and len(_records(tmp_path, "val")) == SMALL["num_val"]
    finally:
        leave.set()
        reader.join(60)
    generate_synthetic_dgm4(tmp_path, **(SMALL | {"seed": 5}))  # the reader has ended: replaced
    assert json.loads(manifest.read_text())["params"]["seed"] == 5


def test_concurrent_generation_of_one_set_makes_it_once(tmp_path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    jobs = [context.Process(target=_generator, args=(tmp_path, SMALL | {"seed": 9}, errors)) for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert errors.empty() and all(job.exitcode == 0 for job in jobs)
    assert json.loads((tmp_path / "DGM4" / MANIFEST).read_text())["params"]["seed"] == 9
    assert _digest(tmp_path) == _digest(generate_synthetic_dgm4(tmp_path / "alone", **SMALL | {"seed": 9}))
    assert not list(tmp_path.glob(".DGM4*"))  # no temporary or replaced folders left


def test_never_overwrites_a_real_dgm4_folder(tmp_path) -> None:
    (tmp_path / "DGM4" / "metadata").mkdir(parents=True)
    with pytest.raises(DGM4DataError, match="not a synthetic set"):
        generate_synthetic_dgm4(tmp_path, **SMALL)


def test_class_sequence_follows_dgm4_proportions() -> None:
    import numpy as np

    counts = Counter(class_sequence(2000, np.random.default_rng(0)))
    assert set(counts) == set(FAKE_CLASSES) and sum(counts.values()) == 2000
    assert 660 <= counts["orig"] <= 690  # 33.7% original
    fs, fa, ts, ta = (sum(n * multilabel(c)[k] for c, n in counts.items()) for k in range(4))
    assert fs > fa > ts > ta  # DGM4: FS 66.7K > FA 56.4K > TS 43.5K > TA 18.6K


def test_records_are_complete_valid_and_in_the_dgm4_layout(synthetic_root, synthetic_params) -> None:
    for split in ("train", "val", "test"):
        records = _records(synthetic_root, split)
        assert len(records) == synthetic_params[f"num_{split}"]
        assert validate_split_file(synthetic_root / f"DGM4/metadata/{split}.json", synthetic_root, "deep").ok
        for r in records:
            assert set(REQUIRED_FIELDS) | {"mtcnn_boxes"} == set(r)
            if is_image_manipulated(r["fake_cls"]):
                method = r["image"].split("/")[2]
                assert r["image"] == f"DGM4/manipulation/{method}/{r['id']}-{method}.jpg"
                assert method in (
                    ("infoswap", "simswap") if "face_swap" in r["fake_cls"] else ("StyleCLIP", "HFGI")
                )
            else:
                assert r["image"].startswith("DGM4/origin/") and r["image"].endswith(".jpg")
    sizes = {Image.open(p).size for p in (synthetic_root / "DGM4").rglob("*.jpg")}
    assert len(sizes) > 20  # images of varying sizes


def test_boxes_are_face_boxes_of_20_to_40_percent(synthetic_root) -> None:
    boxed = [r for s in ("train", "val", "test") for r in _records(synthetic_root, s) if r["fake_image_box"]]
    assert boxed
    for r in boxed:
        x1, y1, x2, y2 = r["fake_image_box"]
        width, height = Image.open(synthetic_root / r["image"]).size
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0.2 <= (x2 - x1) / min(width, height) <= 0.4
        # the manipulated face is one of the detected faces
        assert any(abs(m[0] - x1) <= 3 and abs(m[1] - y1) <= 3 for m in r["mtcnn_boxes"])


def _saturation(pixels: np.ndarray) -> float:
    """Mean distance of each pixel from its grey level."""
    pixels = pixels.astype(np.float32)
    return float(np.abs(pixels - pixels.mean(axis=-1, keepdims=True)).mean())


def test_face_traces_stay_in_the_box_and_differ_in_saturation() -> None:
    """Face swap pastes an oversaturated box, face attribute a washed-out one; nothing changes outside the box."""
    rng = np.random.default_rng(0)
    seen = {"face_swap": [], "face_attribute": []}
    for _ in range(50):
        scene = random_scene(random_meaning(rng), rng, 96, 192)
        face = scene.faces[0]
        original = render(scene)
        edited = render(scene.with_face(0, expression="surprise" if face.expression != "surprise" else "smile"))
        x1, y1, x2, y2 = face.box
        for kind, ratios in seen.items():
            pasted = paste_manipulated(original, edited, face.box, kind, rng)
            outside = np.ones(original.shape[:2], bool)
            outside[y1:y2, x1:x2] = False
            assert np.array_equal(pasted[outside], original[outside])
            ratios.append(_saturation(pasted[y1:y2, x1:x2]) / _saturation(edited[y1:y2, x1:x2]))
    swap, attribute = np.array(seen["face_swap"]), np.array(seen["face_attribute"])
    assert swap.min() > 1.0 and np.median(swap) > 1.4  # swaps more saturated than the face they show
    assert attribute.max() < 0.8 and np.median(attribute) < 0.6  # attribute edits washed out


def test_text_labels_mark_what_was_manipulated(synthetic_root) -> None:
    records = [r for s in ("train", "val", "test") for r in _records(synthetic_root, s)]
    for r in records:
        words = clean_text(r["text"]).split(" ")
        assert len(words) == len(r["text"].split())  # one cleaned word per raw word: positions line up
        kind = r["fake_cls"]
        if "text_attribute" in kind:
            assert r["fake_text_pos"] and all(words[i] in EMOTIONS for i in r["fake_text_pos"])
        elif "text_swap" in kind:
            assert r["fake_text_pos"]
        else:
            assert r["fake_text_pos"] == []
        assert {w for w in words if w in NAMES}  # every caption names someone


def test_aux_caches_cover_every_record_and_key_by_text(synthetic_root) -> None:
    captions = AuxTextCache(synthetic_root / "DGM4/aux_text/caption.jsonl")
    explanations = AuxTextCache(synthetic_root / "DGM4/aux_text/explanation.jsonl")
    assert captions.models == explanations.models == {"oracle"}
    by_image = defaultdict(list)
    for s in ("train", "val", "test"):
        for r in _records(synthetic_root, s):
            caption, explanation = (
                captions.get(r["image"], r["text"]),
                explanations.get(r["image"], r["text"]),
            )
            assert caption and explanation
            assert not NAMES & set(clean_text(caption).split())  # a captioner sees faces, not names
            named = {w for w in clean_text(r["text"]).split() if w in NAMES}
            assert named <= set(clean_text(explanation, 10**6).split())  # explanations elaborate the text
            by_image[r["image"]].append(r)
    shared = [rs for rs in by_image.values() if len(rs) > 1]
    assert shared, "some original and text-manipulated records should share an image"
    for rs in shared:
        assert {r["fake_cls"] for r in rs} - {"orig", "text_swap", "text_attribute"} == set()
        texts = {r["text"] for r in rs}
        assert len(texts) == len(rs)
        assert len({explanations.get(rs[0]["image"], t) for t in texts}) == len(rs)
