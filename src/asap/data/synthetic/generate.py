"""Writing the synthetic DGM4 set: images, `metadata/{train,val,test}.json`, aux-text caches and a manifest."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from asap.data.aux_cache import AuxTextWriter
from asap.data.records import is_image_manipulated, multilabel
from asap.data.synthetic.language import (
    Caption,
    Meaning,
    describe_image,
    explain_text,
    flip_emotions,
    news_caption,
    swapped_positions,
)
from asap.data.synthetic.render import Face, Scene, add_noise, paste_manipulated, render
from asap.data.synthetic.sharing import one_at_a_time, refuse_if_read_by_others, start_reading
from asap.data.synthetic.world import CAST, EXPRESSIONS, PLACES
from asap.errors import DGM4DataError

log = logging.getLogger(__name__)

GENERATOR_VERSION = 4  # bump whenever the output changes
MANIFEST = "synthetic_manifest.json"
SOURCES = ("guardian", "usa_today", "washington_post", "bbc")
METHODS = {"face_swap": ("infoswap", "simswap"), "face_attribute": ("StyleCLIP", "HFGI")}
# DGM4's class mix (dgm4-format.md): 77,426 orig of 230K; FS 66,722, FA 56,411, TS 43,546, TA 18,588 incl. the
# 32,693 mixed ones, split over the 4 mixed kinds assuming image and text kinds independent.
PROPORTIONS = {
    "orig": 0.3366,
    "face_swap": 0.2131,
    "face_attribute": 0.1802,
    "text_swap": 0.0897,
    "text_attribute": 0.0383,
    "face_swap&text_swap": 0.0540,
    "face_swap&text_attribute": 0.0230,
    "face_attribute&text_swap": 0.0456,
    "face_attribute&text_attribute": 0.0195,
}
SPLIT_ID_BASE = {"train": 100_000, "val": 200_000, "test": 300_000}
NUM_FACES_P = (0.6, 0.3, 0.1)  # one, two, three people


def class_sequence(n: int, rng: np.random.Generator) -> list[str]:
    """Exactly `n` fake_cls values in DGM4's proportions (largest remainder), shuffled."""
    raw = {k: p * n / sum(PROPORTIONS.values()) for k, p in PROPORTIONS.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: counts[k] - raw[k])[: n - sum(counts.values())]:
        counts[k] += 1
    seq = [k for k, c in counts.items() for _ in range(c)]
    return [seq[i] for i in rng.permutation(n)]


def random_meaning(rng: np.random.Generator) -> Meaning:
    n = int(rng.choice(3, p=NUM_FACES_P)) + 1
    people = tuple(int(p) for p in rng.choice(len(CAST), size=n, replace=False))
    emotions = tuple(str(e) for e in rng.choice(EXPRESSIONS, size=n))
    return Meaning(people=people, emotions=emotions, place=str(rng.choice(list(PLACES))))


def random_scene(meaning: Meaning, rng: np.random.Generator, min_size: int, max_size: int) -> Scene:
    """Lay the people out left to right; face box side 22-40% of the shorter image side (fit to its slot)."""
    width, height = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    n = len(meaning.people)
    slot = width / n
    faces = []
    for k, (person, expression) in enumerate(zip(meaning.people, meaning.emotions, strict=True)):
        side = int(min(rng.uniform(0.22, 0.40) * min(width, height), 0.9 * slot, 0.5 * height))
        x1 = int(k * slot + rng.uniform(0, slot - side))
        y1 = int(rng.uniform(0.08, 0.5) * (height - side))
        shirt = tuple(int(c) for c in rng.integers(30, 226, size=3))
        faces.append(Face(person, expression, (x1, y1, x1 + side, y1 + side), shirt))  # type: ignore[arg-type]
    return Scene(width, height, meaning.place, tuple(faces), seed=int(rng.integers(2**31)))


def _mtcnn_boxes(scene: Scene, rng: np.random.Generator) -> list[list[int]]:
    """Detector-like face boxes: the face boxes, a little off."""
    out = []
    for f in scene.faces:
        x1, y1, x2, y2 = f.box
        j = rng.integers(-max(1, (x2 - x1) // 25), max(1, (x2 - x1) // 25) + 1, size=4)
        out.append(
            [max(0, x1 + j[0]), max(0, y1 + j[1]), min(scene.width, x2 + j[2]), min(scene.height, y2 + j[3])]
        )
    return [[int(v) for v in b] for b in out]


@dataclass
class _Item:
    """One news item: a scene, its original caption and where its original image lives."""

    scene_id: int
    scene: Scene
    caption: Caption
    origin_path: str


class _SplitWriter:
    """Builds the records of one split, writing images as it goes."""

    def __init__(self, out: Path, split: str, rng: np.random.Generator, cfg: dict[str, Any]) -> None:
        self.out, self.split, self.rng, self.cfg = out, split, rng, cfg
        self.next_id = SPLIT_ID_BASE[split]
        self.shareable: list[_Item] = []  # orig items whose image a text-only record may reuse
        self.aux: list[tuple[str, str, str, str]] = []  # image, text, caption, explanation

    def _save(self, rel: str, image: np.ndarray) -> None:
        path = self.out / rel.removeprefix("DGM4/")  # `out` becomes DGM4/ once complete
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(add_noise(image, self.rng)).save(path, quality=self.cfg["jpeg_quality"])

    def _new_item(self, save_origin: bool) -> _Item:
        meaning = random_meaning(self.rng)
        scene = random_scene(meaning, self.rng, self.cfg["min_size"], self.cfg["max_size"])
        sid, self.next_id = self.next_id, self.next_id + 1
        source = SOURCES[int(self.rng.integers(len(SOURCES)))]
        origin = f"DGM4/origin/{source}/{sid // 1000:04d}/{sid % 1000}.jpg"
        item = _Item(sid, scene, news_caption(meaning, self.rng), origin)
        if save_origin:
            self._save(origin, render(scene))
        return item

    def _edit_image(self, item: _Item, kind: str) -> tuple[Scene, str, list[int]]:
        """Face swap / attribute on one face: the edited scene, the image path and the box."""
        scene = item.scene
        k = int(self.rng.integers(len(scene.faces)))
        face = scene.faces[k]
        if kind == "face_swap":
            others = [p for p in range(len(CAST)) if p not in {f.person for f in scene.faces}]
            edited = scene.with_face(k, person=int(self.rng.choice(others)))
        else:
            edited = scene.with_face(
                k, expression=str(self.rng.choice([e for e in EXPRESSIONS if e != face.expression]))
            )
        method = METHODS[kind][int(self.rng.integers(2))]
        rel = f"DGM4/manipulation/{method}/{item.scene_id}-{method}.jpg"
        self._save(rel, paste_manipulated(render(scene), render(edited), face.box, kind, self.rng))
        return edited, rel, list(face.box)

    def _edit_text(self, item: _Item, kind: str, image_scene: Scene) -> tuple[Caption, list[int]]:
        if kind == "text_swap":
            while True:
                donor = news_caption(random_meaning(self.rng), self.rng)
                positions = swapped_positions(item.caption, donor)
                if positions:
                    return donor, positions
        edited = {
            i: f.expression
            for i, (f, g) in enumerate(zip(image_scene.faces, item.scene.faces, strict=True))
            if f.expression != g.expression
        }
        return flip_emotions(item.caption, self.rng, avoid=edited)

    def record(self, fake_cls: str) -> dict[str, Any]:
        fs, fa, ts, ta = multilabel(fake_cls)
        reuse = not (fs or fa) and bool(ts or ta) and bool(self.shareable) and self.rng.random() < 0.5
        if reuse:
            item = self.shareable.pop(int(self.rng.integers(len(self.shareable))))
        else:
            item = self._new_item(save_origin=not is_image_manipulated(fake_cls))
        scene, image, box = item.scene, item.origin_path, []
        if fs or fa:
            scene, image, box = self._edit_image(item, "face_swap" if fs else "face_attribute")
        caption, positions = item.caption, []
        if ts or ta:
            caption, positions = self._edit_text(item, "text_swap" if ts else "text_attribute", scene)
        if fake_cls == "orig":
            self.shareable.append(item)
        caption_text = describe_image(
            [f.person for f in scene.faces], [f.expression for f in scene.faces], scene.place, self.rng
        )
        self.aux.append((image, caption.text, caption_text, explain_text(caption, self.rng)))
        return {
            "id": item.scene_id,
            "image": image,
            "text": caption.text,
            "fake_cls": fake_cls,
            "fake_image_box": box,
            "fake_text_pos": positions,
            "mtcnn_boxes": _mtcnn_boxes(scene, self.rng),
        }


def _write_set(out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Write the whole set into `out` (a fresh `DGM4` folder); returns per-split class counts."""
    (out / "metadata").mkdir(parents=True)
    summary: dict[str, Any] = {}
    aux_dir = out / "aux_text"
    settings = {"generator": "asap.data.synthetic", "version": GENERATOR_VERSION}
    with (
        AuxTextWriter(
            aux_dir / "caption.jsonl",
            model="oracle",
            prompt_hash="synthetic-caption",
            settings=settings,
            fsync=False,
        ) as captions,
        AuxTextWriter(
            aux_dir / "explanation.jsonl",
            model="oracle",
            prompt_hash="synthetic-explanation",
            settings=settings,
            fsync=False,
        ) as explanations,
    ):
        for i, split in enumerate(("train", "val", "test")):
            rng = np.random.default_rng([params["seed"], i])
            writer = _SplitWriter(out, split, rng, params)
            records = [writer.record(c) for c in class_sequence(params[f"num_{split}"], rng)]
            (out / "metadata" / f"{split}.json").write_text(json.dumps(records, indent=1))
            for image, text, caption, explanation in writer.aux:
                captions.write_ok(image, text, caption)
                explanations.write_ok(image, text, explanation)
            summary[split] = dict(sorted(Counter(r["fake_cls"] for r in records).items()))
    return summary


def _manifest_matches(path: Path, params: dict[str, Any]) -> bool:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return manifest.get("version") == GENERATOR_VERSION and manifest.get("params") == params


def generate_synthetic_dgm4(
    root: str | os.PathLike[str],
    num_train: int = 2000,
    num_val: int = 300,
    num_test: int = 300,
    seed: int = 0,
    min_size: int = 96,
    max_size: int = 192,
    jpeg_quality: int = 90,
    force: bool = False,
    read: bool = False,
) -> Path:
    """Write the synthetic DGM4 set under `root/DGM4` unless an identical one is there; returns `root`.

    Idempotent: `DGM4/synthetic_manifest.json` records the generator version and these parameters, and a set made
    with other ones is replaced, unless another process is reading it (then DGM4DataError names the folder;
    `asap.data.synthetic.sharing`). A `DGM4` folder without that manifest (real data) is never touched.
    read: mark the set as read by this process (the datamodule does), so that no other run replaces it.
    """
    root = Path(root)
    params = {
        "num_train": num_train,
        "num_val": num_val,
        "num_test": num_test,
        "seed": seed,
        "min_size": min_size,
        "max_size": max_size,
        "jpeg_quality": jpeg_quality,
    }
    if min(num_train, num_val, num_test) < 1 or not 48 <= min_size <= max_size:
        raise ValueError(f"bad synthetic DGM4 parameters {params}")
    with one_at_a_time(root):
        _ensure_set(root, params, force)
        if read:
            start_reading(root, params)
    return root


def _ensure_set(root: Path, params: dict[str, Any], force: bool) -> None:
    """Generate and install the set unless it is there (the caller holds the root's generation lock)."""
    target = root / "DGM4"
    if not force and _manifest_matches(target / MANIFEST, params):
        return
    if target.exists() and not (target / MANIFEST).exists():
        raise DGM4DataError(
            f"{target} exists and is not a synthetic set (no {MANIFEST}); refusing to overwrite it"
        )
    if target.exists():
        refuse_if_read_by_others(root, target, _manifest_params(target / MANIFEST), params)
    started = time.time()
    log.info("generating the synthetic DGM4 set under %s (%s)", root, params)
    tmp = root / f".DGM4.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        summary = _write_set(tmp, params)
        manifest = {
            "generator": "asap.data.synthetic",
            "version": GENERATOR_VERSION,
            "params": params,
            "classes": summary,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _install(tmp, target, params)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic DGM4 set written in %.1fs", time.time() - started)


def _manifest_params(path: Path) -> Any:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return "unknown parameters (unreadable manifest)"
    return {"version": manifest.get("version"), **(manifest.get("params") or {})}


def _install(tmp: Path, target: Path, params: dict[str, Any]) -> None:
    """Atomically replace `target` by `tmp` (another process may have just installed the same set)."""
    if target.exists():
        old = target.with_name(f".DGM4.old-{uuid.uuid4().hex[:8]}")
        try:
            target.rename(old)
        except FileNotFoundError:
            pass
        else:
            shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:
        if not _manifest_matches(target / MANIFEST, params):
            raise
