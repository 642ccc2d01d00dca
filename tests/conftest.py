"""Shared fixtures: the bundled bert-base-uncased tokenizer, a small synthetic DGM4 set, hand-written DGM4 sets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import asap.conf  # noqa: F401  (the ${...} resolvers and group schemas every compose of conf/ needs)
from asap.utils.paths import bundled_bert_tokenizer_dir


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker (and every process it starts) gets its share of the cores.

    Two workers that each run torch on every core slow each other down (the suite took as long as in one process).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, torch.get_num_threads() // workers)  # torch's own default, shared out
        os.environ["OMP_NUM_THREADS"] = str(threads)  # forked runs, DDP ranks and notebook kernels
        torch.set_num_threads(threads)

# the tiny synthetic set every data test shares (generated once per session, well under a second)
SYNTHETIC_SIZES = {"num_train": 64, "num_val": 24, "num_test": 24, "seed": 1}


@pytest.fixture(scope="session")
def tokenizer_dir() -> str:
    """bert-base-uncased (the protocol's tokenizer), offline."""
    return str(bundled_bert_tokenizer_dir())


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: str):
    from asap.data.text import load_tokenizer

    return load_tokenizer(tokenizer_dir)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic DGM4 set (read-only for tests: copy it before changing anything)."""
    from asap.data.synthetic import generate_synthetic_dgm4

    return generate_synthetic_dgm4(tmp_path_factory.mktemp("synthetic"), **SYNTHETIC_SIZES)


def write_image(
    root: Path, rel: str, size: tuple[int, int], colour: tuple[int, int, int] = (90, 120, 150)
) -> Path:
    """A JPEG of `size` (W, H) at `root/rel`."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)
    return path


def _dgm4_record(i: int, fake_cls: str = "orig", **fields: Any) -> dict[str, Any]:
    """A valid record (image 120x80 by default, see `make_dgm4`); override any field."""
    record = {
        "id": i,
        "image": f"DGM4/origin/bbc/0000/{i}.jpg",
        "text": "Anna smiles at the beach.",
        "fake_cls": fake_cls,
        "fake_image_box": [],
        "fake_text_pos": [],
        "mtcnn_boxes": [],
    }
    return record | fields


@pytest.fixture(scope="session")
def dgm4_record() -> Callable[..., dict[str, Any]]:
    """`dgm4_record(i, fake_cls="orig", **fields)`: a valid record (its image is 120x80 under `make_dgm4`)."""
    return _dgm4_record


@pytest.fixture(scope="session")
def synthetic_params() -> dict[str, int]:
    """The parameters `synthetic_root` was generated with."""
    return dict(SYNTHETIC_SIZES)


@pytest.fixture
def make_dgm4(tmp_path: Path) -> Callable[..., Path]:
    """`make_dgm4({"train": [records], ...}, sizes={image: (W, H)})` -> root with images + split files.

    Every record's image is written (120x80 unless `sizes` says otherwise) unless listed in `skip_images`.
    """

    def make(
        splits: dict[str, list[Any]],
        sizes: dict[str, tuple[int, int]] | None = None,
        skip_images: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> Path:
        root = tmp_path / "dgm4_root"
        (root / "DGM4" / "metadata").mkdir(parents=True, exist_ok=True)
        for split, records in splits.items():
            (root / "DGM4" / "metadata" / f"{split}.json").write_text(json.dumps(records))
            for r in records:
                if isinstance(r, dict) and isinstance(r.get("image"), str) and r["image"] not in skip_images:
                    if not (root / r["image"]).exists():
                        write_image(root, r["image"], (sizes or {}).get(r["image"], (120, 80)))
        return root

    return make
