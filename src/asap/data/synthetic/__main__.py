"""`python -m asap.data.synthetic ROOT [--num-train N ...]`: write the synthetic DGM4 set under ROOT."""

from __future__ import annotations

import argparse
import logging

from asap.data.synthetic.generate import generate_synthetic_dgm4


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m asap.data.synthetic", description=__doc__)
    p.add_argument("root", help="folder to hold DGM4/")
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=300)
    p.add_argument("--num-test", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="regenerate even when an identical set is there")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generate_synthetic_dgm4(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        seed=args.seed,
        force=args.force,
    )


if __name__ == "__main__":
    main()
