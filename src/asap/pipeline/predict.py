"""The prediction job behind `src/predict.py`: a checkpoint + one pair or a JSON list of pairs -> verdicts.json,
one figure per pair, rich panels on the console."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from asap.errors import UserError
from asap.pipeline.common import write_json

log = logging.getLogger(__name__)
QUOTING_HINT = (
    "quote it for Hydra and the shell: 'text=\"Anna smiles, at the beach.\"' (or use pairs=FILE.json)"
)


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Judge the pairs `cfg` names; write `verdicts.json` and figures under `cfg.output_dir`; return the verdicts."""
    from asap.inference import Predictor
    from asap.visualize import print_verdict, save_verdict_figure

    pairs = pairs_from_config(cfg)
    predictor = Predictor.from_checkpoint(
        cfg.ckpt_path, device=cfg.device, tokenizer=cfg.get("tokenizer"), threshold=float(cfg.threshold)
    )
    predictions = predictor.predict(pairs, batch_size=int(cfg.batch_size))
    output_dir = Path(cfg.output_dir)
    for i, prediction in enumerate(predictions):
        verdict = prediction.verdict
        for warning in verdict.warnings:
            log.warning("%s: %s", pairs[i].name, warning)
        if cfg.figures:
            name = f"{i:03d}_{_safe_stem(verdict.image)}.png"
            verdict.figure = str(save_verdict_figure(prediction, output_dir / name))
        print_verdict(verdict)
    verdicts = [p.verdict.to_dict() for p in predictions]
    write_json(output_dir / "verdicts.json", {"checkpoint": str(cfg.ckpt_path), "verdicts": verdicts})
    log.info("%d verdict(s) written to %s", len(verdicts), output_dir / "verdicts.json")
    return verdicts


def pairs_from_config(cfg: DictConfig) -> list[Any]:
    """`image=` + `text=` (one pair) or `pairs=FILE.json` (a list), never both."""
    from asap.inference import Pair

    single = cfg.get("image") is not None or cfg.get("text") is not None
    if single == (cfg.get("pairs") is not None):
        raise UserError(
            'give either image=IMG and text="..." (one pair) or pairs=FILE.json (a list of pairs)'
        )
    if not single:
        return read_pairs_file(Path(str(cfg.pairs)))
    if cfg.get("image") is None or cfg.get("text") is None:
        raise UserError('one pair needs both image=IMG and text="..."')
    return [Pair(Path(str(cfg.image)).expanduser(), _text_value(cfg.text), name=f"image={cfg.image}")]


def _text_value(value: Any) -> str:
    if isinstance(value, ListConfig | list | dict | DictConfig):
        raise UserError(f"text= was read as a list or mapping ({value}); {QUOTING_HINT}")
    return str(value)


def read_pairs_file(path: Path) -> list[Any]:
    """A JSON list of {"image": path, "text": str}; relative image paths are relative to the file's folder."""
    from asap.inference import Pair

    if not path.is_file():
        raise UserError(f"pairs file not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"pairs file {path} is not valid JSON: {err}") from err
    if not isinstance(entries, list) or not entries:
        raise UserError(f'pairs file {path} must hold a non-empty JSON list of {{"image": ..., "text": ...}}')
    pairs = []
    for i, entry in enumerate(entries):
        where = f"{path}: pair #{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or "text" not in entry:
            raise UserError(f'{where} must be an object with a string "image" and a "text", got {entry!r}')
        if not isinstance(entry["text"], str):
            raise UserError(f'{where}: "text" must be a string, got {type(entry["text"]).__name__}')
        image = Path(entry["image"]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        pairs.append(Pair(image, entry["text"], name=f"{where} (image={entry['image']})"))
    return pairs


def _safe_stem(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(image).stem)[:60] or "image"
