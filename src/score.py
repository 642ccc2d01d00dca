"""Score a prediction file with the 12 DGM4 metrics (HAMMER protocol), offline.

python src/score.py logs/eval/runs/<time>/predictions_test.npz
python src/score.py predictions_test.npz --json > metrics.json
"""

from __future__ import annotations

import argparse
import sys


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
        epilog="A malformed file prints one error line and exits with status 2. Undefined metrics print as nan.",
    )
    parser.add_argument("path", metavar="PATH.npz", help="prediction file (see asap.metrics.predictions)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object {metric: value} instead of the table"
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
    from asap.metrics.predictions import PredictionFileError, load_predictions, score_predictions

    try:
        arrays = load_predictions(args.path)
    except PredictionFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    values = score_predictions(arrays, chunk_size=args.chunk_size, validate=False)  # validated on load

    from asap.metrics.report import grouped_metrics_table, metrics_json

    try:
        if args.json:
            print(metrics_json(values))
        else:
            from rich.console import Console
            from rich.markup import escape

            n, width = arrays["token_labels"].shape
            console = Console()
            console.print(
                f"[bold]{escape(args.path)}[/bold]: {n} samples, {width} token positions", soft_wrap=True
            )
            console.print(grouped_metrics_table(values))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = None  # type: ignore[assignment]  (no second error at exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
