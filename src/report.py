"""Collect a sweep's jobs into the paper's table (rich, Markdown, LaTeX, CSV, PNG).

    python src/report.py logs/train/multiruns/table9_alpha_2026-11-22_10-00-00
"""

from __future__ import annotations

import argparse
import sys

from asap.utils.console import console


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="a multirun folder of src/train.py (holds one metrics.json per job)")
    parser.add_argument("--sweep-name", help="which paper table to compare with (default: read from the jobs)")
    args = parser.parse_args(argv)
    from asap.reporting import report

    try:
        report(args.sweep_dir, args.sweep_name)
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
