"""Generate the LMA auxiliary texts (paper §3.1): captions (image -> MLLM) and explanations (text -> LLM).

    python src/generate_aux_text.py task=caption data_root=/data aux_backend=transformers \
        aux_backend.model=Qwen/Qwen2-VL-7B-Instruct
    python src/generate_aux_text.py task=explanation data_root=/data aux_backend=vllm
    python src/generate_aux_text.py task=caption data_root=/data shard=0 num_shards=4   # one node of four
    python src/generate_aux_text.py merge task=caption data_root=/data num_shards=4     # or command=merge
    python src/generate_aux_text.py status task=caption data_root=/data                 # coverage of the split

Restartable (run it again after a crash: it continues), sharded, merged; see docs/aux_text.md.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

import asap.utils.resolvers  # noqa: F401  (registers the ${...} resolvers used in conf/)
from asap.auxtext.cli import rewrite_subcommand, run_from_config
from asap.utils.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate_aux_text")
@exit_on_user_error
def main(cfg: DictConfig) -> dict[str, Any]:
    return run_from_config(cfg)


if __name__ == "__main__":
    sys.argv = rewrite_subcommand(sys.argv)
    main()
