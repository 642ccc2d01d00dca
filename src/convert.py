"""Convert official checkpoints (ALBEF, HAMMER, ASAP) into ours, and ours back into the official layout.

python src/convert.py hammer checkpoint_best.pth hammer.ckpt           # then src/eval.py ckpt_path=hammer.ckpt
python src/convert.py hammer tiny.pth tiny.ckpt model=tiny model.image_encoder.stem=patch   # Hydra overrides
python src/convert.py hammer ours.ckpt hammer_layout.pth --to-official
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asap.models.official_keys import SOURCES
from asap.utils.cli import exit_on_user_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert.py",
        description=(
            "Turn an official state dict ({'model': ...} or bare) into a checkpoint that src/eval.py and "
            "src/predict.py read (hammer -> experiment=hammer_baseline, asap -> experiment=asap_full, albef -> "
            "a starting point), or with --to-official our checkpoint into the official layout. Prints a key "
            "report (mapped / derived / dropped with the reason) and stops, writing nothing, when a tensor does "
            "not map. Key map: docs/checkpoints.md."
        ),
    )
    parser.add_argument("source", choices=SOURCES, help="whose layout the official file has")
    parser.add_argument("src", type=Path, help="the file to read (official .pth, or ours with --to-official)")
    parser.add_argument("dst", type=Path, help="the file to write")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the model, e.g. model=tiny")
    parser.add_argument(
        "--to-official", action="store_true", help="write our checkpoint in the official layout"
    )
    parser.add_argument(
        "--allow-missing", action="store_true", help="write the file even when some tensors do not map"
    )
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from asap.pipeline.convert import export_checkpoint, import_checkpoint

    if args.to_official:
        if args.overrides:
            raise SystemExit(
                "convert.py: --to-official takes no overrides (the model comes from the checkpoint)"
            )
        export_checkpoint(args.source, args.src, args.dst, args.allow_missing)
    else:
        import_checkpoint(args.source, args.src, args.dst, args.overrides, args.allow_missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
