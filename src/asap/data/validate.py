"""Validation of DGM4 split files: every problem, with record ids and counts; nothing skipped silently.

Library: `validate_records(records, root, ...) -> ValidationReport` (used by `DGM4DataModule.setup`).
Command::

    python -m asap.data.validate ROOT [--split train val test] [--deep] [--aux caption explanation]

Image checks: `none`; `exists`; `header` (default: the file opens as an image and gives its size, no decode, which
also checks the box against the image size); `deep` (full decode: catches truncated files; slow on 230K images).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from asap.data.records import (
    FAKE_CLASSES,
    REQUIRED_FIELDS,
    SPLITS,
    is_image_manipulated,
    is_text_manipulated,
    load_split,
)
from asap.data.text import clean_text

IMAGE_CHECKS = ("none", "exists", "header", "deep")
PROBLEM_KINDS = {
    "not_a_record": "record is not a JSON object",
    "missing_field": "a required field is missing",
    "bad_field_type": "a field has the wrong type",
    "unknown_fake_cls": "fake_cls is not one of the 9 DGM4 kinds",
    "empty_text": "text is empty after cleaning",
    "malformed_box": "fake_image_box is not [] or [x1, y1, x2, y2] with x2-x1 >= 1, y2-y1 >= 1",
    "box_class_mismatch": "a face manipulation without a box, or a box without one",
    "box_outside_image": "fake_image_box reaches outside the image",
    "malformed_text_pos": "fake_text_pos is not a list of non-negative integers",
    "text_pos_beyond_text": "fake_text_pos points past the last word of the text",
    "text_pos_class_mismatch": "manipulated words on a record without a text manipulation",
    "missing_image": "image file not found",
    "unreadable_image": "image file does not open / decode",
}


@dataclass(frozen=True)
class Problem:
    """One problem of one record."""

    index: int  # position in the split file
    record_id: str
    kind: str  # a key of PROBLEM_KINDS
    message: str


@dataclass
class ValidationReport:
    """All problems of one split file."""

    path: Path
    num_records: int
    image_check: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_indices(self) -> list[int]:
        return sorted({p.index for p in self.problems})

    def counts(self) -> Counter[str]:
        return Counter(p.kind for p in self.problems)

    def summary(self, show: int = 10) -> str:
        """Plain text: counts by kind, then the first `show` problems."""
        if self.ok:
            return f"{self.path}: {self.num_records} records, no problems"
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.counts().items()))
        lines = [
            f"{self.path}: {len(self.bad_indices)} of {self.num_records} records have problems "
            f"({len(self.problems)} problems; {kinds})"
        ]
        lines += [f"  #{p.index} (id={p.record_id}) {p.kind}: {p.message}" for p in self.problems[:show]]
        if len(self.problems) > show:
            lines.append(
                f"  ... and {len(self.problems) - show} more (python -m asap.data.validate lists them all)"
            )
        return "\n".join(lines)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _field_problems(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """Schema checks that need no image."""
    missing = [f for f in REQUIRED_FIELDS if f not in rec]
    if missing:
        return [("missing_field", f"missing {', '.join(missing)}")]
    types = {
        "id": _is_int(rec["id"]) or isinstance(rec["id"], str),
        "image": isinstance(rec["image"], str) and bool(rec["image"]),
        "text": isinstance(rec["text"], str),
        "fake_cls": isinstance(rec["fake_cls"], str),
    }
    bad = [f"{k}={rec[k]!r}" for k, good in types.items() if not good]
    if bad:
        return [("bad_field_type", f"wrong type: {', '.join(bad)}")]
    out: list[tuple[str, str]] = []
    if rec["fake_cls"] not in FAKE_CLASSES:
        out.append(("unknown_fake_cls", f"fake_cls {rec['fake_cls']!r}"))
    out += _text_problems(rec)
    out += _box_problems(rec)
    return out


def _text_problems(rec: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    cleaned = clean_text(rec["text"], max_words=sys.maxsize)
    if not cleaned:
        out.append(("empty_text", f"text {rec['text']!r}"))
    pos = rec["fake_text_pos"]
    if not isinstance(pos, list) or not all(_is_int(i) and i >= 0 for i in pos):
        return out + [("malformed_text_pos", f"fake_text_pos {pos!r}")]
    num_words = max(len(rec["text"].split()), len(cleaned.split(" ")) if cleaned else 0)
    beyond = [i for i in pos if i >= num_words]
    if beyond:
        out.append(("text_pos_beyond_text", f"fake_text_pos {beyond} but the text has {num_words} words"))
    if pos and rec["fake_cls"] in FAKE_CLASSES and not is_text_manipulated(rec["fake_cls"]):
        out.append(("text_pos_class_mismatch", f"fake_cls {rec['fake_cls']!r} with fake_text_pos {pos}"))
    return out


def _box_problems(rec: dict[str, Any]) -> list[tuple[str, str]]:
    box = rec["fake_image_box"]
    if not isinstance(box, list) or len(box) not in (0, 4) or not all(_is_number(v) for v in box):
        return [("malformed_box", f"fake_image_box {box!r}")]
    if box and (box[2] - box[0] < 1 or box[3] - box[1] < 1):
        return [("malformed_box", f"fake_image_box {box} has x2-x1 or y2-y1 below 1 pixel")]
    out: list[tuple[str, str]] = []
    if box and (box[0] < 0 or box[1] < 0):
        out.append(("box_outside_image", f"fake_image_box {box} has a negative coordinate"))
    if rec["fake_cls"] in FAKE_CLASSES and bool(box) != is_image_manipulated(rec["fake_cls"]):
        what = "no box" if not box else f"box {box}"
        out.append(("box_class_mismatch", f"fake_cls {rec['fake_cls']!r} with {what}"))
    return out


def image_size(path: Path, deep: bool = False) -> tuple[int, int]:
    """(W, H) from the header; `deep` decodes the whole image. Raises OSError / UnidentifiedImageError."""
    with Image.open(path) as im:
        if deep:
            im.load()
        return im.size


def _image_problems(rec: dict[str, Any], root: Path, image_check: str) -> list[tuple[str, str]]:
    if image_check == "none":
        return []
    path = root / rec["image"]
    if not path.is_file():
        return [("missing_image", f"{path} not found")]
    if image_check == "exists":
        return []
    try:
        width, height = image_size(path, deep=image_check == "deep")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        return [("unreadable_image", f"{path}: {err}")]
    box = rec["fake_image_box"]
    if isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box):
        if box[2] > width or box[3] > height:
            return [("box_outside_image", f"fake_image_box {box} outside the {width}x{height} image {path}")]
    return []


def check_record(record: Any, index: int, root: str | Path, image_check: str = "header") -> list[Problem]:
    """Every problem of one record (schema, labels, and its image as `image_check` says)."""
    if image_check not in IMAGE_CHECKS:
        raise ValueError(f"image_check must be one of {IMAGE_CHECKS}, got {image_check!r}")
    if not isinstance(record, dict):
        return [Problem(index, "?", "not_a_record", f"got {type(record).__name__}: {str(record)[:60]}")]
    found = _field_problems(record)
    if not any(kind in ("missing_field", "bad_field_type") for kind, _ in found):
        found += _image_problems(record, Path(root), image_check)
    rid = str(record.get("id", "?"))
    return [Problem(index, rid, kind, msg) for kind, msg in found]


def validate_records(
    records: Sequence[Any],
    root: str | Path,
    path: str | Path = "<records>",
    image_check: str = "header",
    workers: int = 8,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> ValidationReport:
    """Check all records (images read by `workers` threads); `progress(iterable, total)` may wrap the loop."""

    def check(item: tuple[int, Any]) -> list[Problem]:
        return check_record(item[1], item[0], root, image_check)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results: Iterable[list[Problem]] = pool.map(check, enumerate(records), chunksize=64)
        if progress is not None:
            results = progress(results, len(records))
        problems = [p for found in results for p in found]
    return ValidationReport(
        path=Path(path), num_records=len(records), image_check=image_check, problems=problems
    )


def validate_split_file(
    path: str | Path, root: str | Path, image_check: str = "header", workers: int = 8
) -> ValidationReport:
    """Load and check one split file (missing / non-list files raise `DGM4DataError`)."""
    return validate_records(load_split(path), root, path=path, image_check=image_check, workers=workers)


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m asap.data.validate",
        description="Check DGM4 split files: record fields, fake_cls, boxes, fake_text_pos, texts and images. "
        "Prints every problem kind with counts and the first records per kind; exits 1 when anything is wrong.",
        epilog="example: python -m asap.data.validate /data --split val test --deep --aux caption",
    )
    p.add_argument("root", type=Path, help="folder that holds DGM4/ (record image paths are relative to it)")
    p.add_argument(
        "--split",
        nargs="+",
        default=list(SPLITS),
        metavar="NAME",
        help="splits to check, read from ROOT/DGM4/metadata/NAME.json (default: train val test)",
    )
    p.add_argument(
        "--split-file",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="extra split files to check (relative to ROOT or absolute)",
    )
    p.add_argument(
        "--image-check",
        choices=IMAGE_CHECKS,
        default="header",
        help="how images are checked (default: header = opens and gives its size, no decode)",
    )
    p.add_argument(
        "--deep", action="store_true", help="decode every image fully (same as --image-check deep)"
    )
    p.add_argument(
        "--aux",
        nargs="*",
        choices=("caption", "explanation"),
        default=[],
        help="also report records without a cached caption / explanation",
    )
    p.add_argument("--aux-dir", default="DGM4/aux_text", help="aux-text cache folder, relative to ROOT")
    p.add_argument("--show", type=int, default=10, help="problems listed per kind (default 10)")
    p.add_argument("--workers", type=int, default=8, help="threads reading image headers (default 8)")
    return p


def _print_report(console: Any, report: ValidationReport, show: int) -> None:
    from rich.table import Table

    counts = report.counts()
    status = "[green]ok[/]" if report.ok else f"[red]{len(report.bad_indices)} bad records[/]"
    console.print(f"[bold]{report.path}[/]: {report.num_records} records, {status}")
    if report.ok:
        return
    table = Table(title="problems by kind", title_justify="left")
    for col in ("kind", "count", "meaning"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(kind, str(n), PROBLEM_KINDS[kind])
    console.print(table)
    detail = Table(title=f"first {show} records per kind", title_justify="left")
    for col in ("#", "id", "kind", "message"):
        detail.add_column(col, overflow="fold")
    for kind in counts:
        for p in [p for p in report.problems if p.kind == kind][:show]:
            detail.add_row(str(p.index), p.record_id, p.kind, p.message)
    console.print(detail)


def _check_aux(
    console: Any, root: Path, records: list[Any], kinds: list[str], aux_dir: str, show: int
) -> int:
    from asap.data.aux_cache import AuxTextCache

    bad = 0
    for kind in kinds:
        cache_path = root / aux_dir / f"{kind}.jsonl"
        if not cache_path.is_file():
            console.print(f"  [red]{kind} cache not found:[/] {cache_path}")
            bad += 1
            continue
        cache = AuxTextCache(cache_path)
        missing = [
            (i, r)
            for i, r in enumerate(records)
            if isinstance(r, dict) and (r.get("image"), r.get("text")) not in cache
        ]
        colour = "red" if missing else "green"
        console.print(
            f"  {kind}: [{colour}]{len(missing)} of {len(records)} records missing[/] in {cache_path}"
        )
        for i, r in missing[:show]:
            console.print(
                f"    #{i} (id={r.get('id')}) image={r.get('image')!r} text={str(r.get('text'))[:60]!r}"
            )
        bad += bool(missing)
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 = all clean)."""
    from rich.progress import track

    from asap.errors import DGM4DataError
    from asap.utils.console import console

    args = _parser().parse_args(argv)
    image_check = "deep" if args.deep else args.image_check
    files = [args.root / "DGM4" / "metadata" / f"{s}.json" for s in args.split]
    files += [f if f.is_absolute() else args.root / f for f in args.split_file]
    failures = 0
    for path in files:
        try:
            records = load_split(path)
        except DGM4DataError as err:
            console.print(f"[red]{err}[/]")
            failures += 1
            continue
        report = validate_records(
            records,
            args.root,
            path=path,
            image_check=image_check,
            workers=args.workers,
            progress=lambda it, n, p=path: track(
                it, total=n, description=f"{p.name} ({image_check})", console=console, transient=True
            ),
        )
        _print_report(console, report, args.show)
        failures += not report.ok
        failures += _check_aux(console, args.root, records, args.aux, args.aux_dir, args.show)
    console.print("[green]all clean[/]" if not failures else f"[red]{failures} check(s) failed[/]")
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
