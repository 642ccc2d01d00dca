"""Speed of scoring a prediction file: `score_predictions` on a DGM4-test-sized set (50,000 samples, L = 128).

The budget is 5 s on the CPU. Building the random predictions is not timed; file I/O is timed separately.

    python benchmarks/bench_metrics.py
    python benchmarks/bench_metrics.py --samples 50000 --tokens 128 --repeats 3 --json logs/bench/metrics.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.table import Table

from asap.metrics.predictions import (
    load_predictions,
    save_predictions,
    score_predictions,
    synthetic_predictions,
)
from asap.utils.console import console  # full width off a terminal (a log, `| tee`)


def timed(fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--tokens", type=int, default=128, help="token positions per sample (L)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of score_predictions (median reported)"
    )
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--budget-s", type=float, default=5.0, help="exit 1 when the median is above this")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    arrays = synthetic_predictions(args.samples, num_tokens=args.tokens, seed=0)
    score_predictions({k: v[:64] for k, v in arrays.items()})  # warm-up (lazy imports, first allocations)
    runs = [timed(score_predictions, arrays, chunk_size=args.chunk_size)[0] for _ in range(args.repeats)]
    unvalidated = timed(score_predictions, arrays, chunk_size=args.chunk_size, validate=False)[0]
    with tempfile.TemporaryDirectory() as tmp:
        save_s = timed(save_predictions, Path(tmp) / "p.npz", **arrays)[0]
        load_s, _ = timed(load_predictions, Path(tmp) / "p.npz")
        size_mb = (Path(tmp) / "p.npz").stat().st_size / 2**20

    median = statistics.median(runs)
    result = {
        "samples": args.samples,
        "tokens": args.tokens,
        "score_predictions_s": {"median": median, "runs": runs},
        "score_without_validation_s": unvalidated,
        "save_s": save_s,
        "load_and_validate_s": load_s,
        "file_mb": size_mb,
        "budget_s": args.budget_s,
        "within_budget": median < args.budget_s,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    table = Table(title=f"score_predictions: {args.samples} samples x {args.tokens} tokens")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_row(f"score (median of {args.repeats})", f"{median:.3f}")
    table.add_row("score, no validation", f"{unvalidated:.3f}")
    table.add_row(f"save ({size_mb:.0f} MiB, compressed)", f"{save_s:.3f}")
    table.add_row("load + validate", f"{load_s:.3f}")
    console.print(table)
    verdict = "within" if result["within_budget"] else "OVER"
    print(f"{verdict} the {args.budget_s:.1f} s budget ({torch.get_num_threads()} torch threads)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
