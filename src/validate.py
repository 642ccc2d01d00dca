"""Check DGM4 split files before training: every problem, with record ids and counts (asap.data.validate).

python src/validate.py /data/dgm4                              # train, val, test; image headers
python src/validate.py /data/dgm4 --split val test --deep --aux caption explanation
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asap.data.records import SPLITS, load_split
from asap.data.validate import (
    IMAGE_CHECKS,
    PROBLEM_KINDS,
    ValidationReport,
    records_without_aux,
    validate_records,
)
from asap.errors import DGM4DataError
from asap.utils.cli import exit_on_user_error


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="validate.py",
        description="Check DGM4 split files: record fields, fake_cls, boxes, fake_text_pos, texts and images. "
        "Prints every problem kind with counts and the first records per kind; exits 1 when anything is wrong.",
        epilog="example: python src/validate.py /data --split val test --deep --aux caption",
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
    """The split's status; when anything is wrong, the counts by kind and the first `show` records per kind."""
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


def _print_aux(
    console: Any, root: Path, records: list[Any], kinds: list[str], aux_dir: str, show: int
) -> int:
    """Records without a cached text, per kind in `kinds`; returns how many kinds fail (no cache, or gaps)."""
    bad = 0
    for kind in kinds:
        cache_path = root / aux_dir / f"{kind}.jsonl"
        if not cache_path.is_file():
            console.print(f"  [red]{kind} cache not found:[/] {cache_path}")
            bad += 1
            continue
        missing = records_without_aux(records, cache_path)
        colour = "red" if missing else "green"
        console.print(
            f"  {kind}: [{colour}]{len(missing)} of {len(records)} records missing[/] in {cache_path}"
        )
        for i in missing[:show]:
            r = records[i]
            console.print(
                f"    #{i} (id={r.get('id')}) image={r.get('image')!r} text={str(r.get('text'))[:60]!r}"
            )
        bad += bool(missing)
    return bad


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Check every split file asked for; returns the exit status (0 = all clean, 1 a problem, 2 a bad cache)."""
    from rich.progress import track

    from asap.utils.console import console

    args = build_parser().parse_args(argv)
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
        failures += _print_aux(console, args.root, records, args.aux, args.aux_dir, args.show)
    console.print("[green]all clean[/]" if not failures else f"[red]{failures} check(s) failed[/]")
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
