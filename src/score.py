"""Score a prediction file with the 12 DGM4 metrics (HAMMER protocol), offline.

python src/score.py logs/eval/runs/<time>/predictions_test.npz
python src/score.py predictions_test.npz --json > metrics.json
python src/score.py predictions_test.npz --by fake_cls [--by source ...] [--json] [--out DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_BREAKDOWN = Path(__file__).resolve().parent.parent / "conf" / "breakdown" / "default.yaml"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score.py",
        description=(
            "Compute the 12 DGM4 metrics (AUC, EER, ACC; mAP, CF1, OF1; IoU_mean, IoU50, IoU75; Precision, "
            "Recall, F1), x100, plus extras (per-type AP and F1, boxed-only IoU), from a prediction file "
            "written by src/eval.py or src/train.py, exactly as the HAMMER protocol computes them."
        ),
        epilog=(
            "A malformed file prints one error line and exits with status 2. Undefined metrics print as nan "
            "(null in JSON; '–' with the reason in a breakdown table). Groupings for --by come from "
            "--breakdown-config (default conf/breakdown/default.yaml: fake_cls, method, source, face_size, "
            "modality); see docs/results.md."
        ),
    )
    parser.add_argument("path", metavar="PATH.npz", help="prediction file (see asap.metrics.predictions)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object {metric: value} instead of the table"
    )
    parser.add_argument(
        "--by",
        action="append",
        metavar="GROUPING",
        help="the 12 metrics per slice of this grouping (repeatable; 'all' for every grouping); with --json: "
        '{slice: {metric: value, ..., "n": size}} (one grouping) or {grouping: {slice: ...}} (several)',
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="also write breakdown_<split>.{csv,md,png} there (the groupings of --by, or all)",
    )
    parser.add_argument(
        "--breakdown-config",
        type=Path,
        default=DEFAULT_BREAKDOWN,
        metavar="FILE.yaml",
        help="the groupings (a conf/breakdown file: its 'groupings' and 'min_samples')",
    )
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=8192,
        help="samples per metric update (memory vs speed; default 8192)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from asap.errors import PredictionFileError
    from asap.metrics.predictions import load_predictions, score_predictions

    try:
        arrays = load_predictions(args.path)
    except PredictionFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.by:
        return _breakdown(args, arrays)
    values = score_predictions(arrays, chunk_size=args.chunk_size, validate=False)  # validated on load

    from asap.metrics.report import grouped_metrics_table, metrics_json

    try:
        if args.json:
            print(metrics_json(values))
        else:
            from rich.markup import escape

            from asap.utils.console import console

            n, width = arrays["token_labels"].shape
            console.print(f"[bold]{escape(args.path)}[/bold]: {n} samples, {width} token positions")
            console.print(grouped_metrics_table(values))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = None  # type: ignore[assignment]  (no second error at exit)
        return 0
    return _breakdown(args, arrays) if args.out else 0


def _breakdown(args: argparse.Namespace, arrays: dict) -> int:
    """--by (printed) and --out (written): the per-slice metrics of the chosen groupings (all without --by)."""
    import json

    from asap.errors import BreakdownError
    from asap.metrics.breakdown import compute_breakdown, grouping_json, load_groupings
    from asap.reporting.breakdown import to_rich, write_breakdown
    from asap.utils.console import console

    try:
        groupings, min_samples = load_groupings(args.breakdown_config)
        chosen = _chosen(args.by, [g.name for g in groupings])
        groupings = [g for g in groupings if g.name in chosen]
        split = _split_name(args.path)
        breakdown = compute_breakdown(arrays, groupings, split=split, min_samples=min_samples)
        for result in breakdown.groupings:
            if result.missing and args.by and "all" not in args.by:
                raise BreakdownError(f"{args.path}: grouping {result.name!r} needs the array(s) "
                                     f"{', '.join(result.missing)}, which this prediction file lacks")
    except BreakdownError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = write_breakdown(breakdown, args.out) if args.out else {}
    try:
        if args.json and args.by:
            out = {r.name: grouping_json(r) for r in breakdown.groupings if not r.missing}
            print(json.dumps(next(iter(out.values())) if len(chosen) == 1 else out, indent=2))
        elif args.by:
            for result in breakdown.groupings:
                console.print(to_rich(result, breakdown))
        if paths and not args.json:
            console.print("written: " + ", ".join(str(p) for p in paths.values()))
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stdout = None  # type: ignore[assignment]
    return 0


def _chosen(by: list[str] | None, known: list[str]) -> list[str]:
    from asap.errors import BreakdownError

    if not by or "all" in by:
        return known
    unknown = [b for b in by if b not in known]
    if unknown:
        raise BreakdownError(f"unknown grouping(s) {', '.join(unknown)}; known: {', '.join(known)}, all")
    return list(dict.fromkeys(by))


def _split_name(path: str) -> str:
    """predictions_<split>.npz -> <split>; any other file name -> its stem."""
    match = re.fullmatch(r"predictions_(\w+)\.npz", Path(path).name)
    return match.group(1) if match else Path(path).stem


if __name__ == "__main__":
    sys.exit(main())
