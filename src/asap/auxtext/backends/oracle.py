"""`oracle`: the synthetic set's own ground truth (what its generator knows the image / text says).

`asap.data.synthetic` writes these texts while generating the set, as ``DGM4/aux_text/{caption,explanation}.jsonl``
(model "oracle"). This backend serves them per key, so the command can fill another file or check coverage. It
refuses real data: DGM⁴ has no ground-truth captions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asap.auxtext.backends.base import Backend, GenContext, GenRequest, GenResult
from asap.data.aux_cache import AuxTextCache
from asap.errors import BackendUnavailable

SYNTHETIC_MANIFEST = "DGM4/synthetic_manifest.json"


class OracleBackend(Backend):
    """Copies the synthetic generator's ground-truth texts (same model name and prompt hash as its caches)."""

    def __init__(self, context: GenContext, source: str | None = None, batch_size: int = 256) -> None:
        super().__init__(context)
        root = Path(context.data_root)
        if not (root / SYNTHETIC_MANIFEST).is_file():
            raise BackendUnavailable(
                f"aux_backend=oracle works on the synthetic set only ({root / SYNTHETIC_MANIFEST} not found): real "
                "DGM4 has no ground-truth captions; use aux_backend=transformers, vllm or openai"
            )
        self.source = Path(source) if source else root / "DGM4" / "aux_text" / f"{context.task}.jsonl"
        self.cache = AuxTextCache(self.source)
        if len(self.cache) == 0:
            raise BackendUnavailable(
                f"no oracle {context.task} texts in {self.source} (regenerate the synthetic set)"
            )
        self.batch_size = batch_size
        self._model = _single(self.cache.models, "model", self.source)
        self._hash = _single(self.cache.prompt_hashes, "prompt hash", self.source)
        self._settings = next(self.cache.entries()).settings

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def prompt_hash(self) -> str:
        return self._hash

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        return [self._one(r) for r in requests]

    def _one(self, request: GenRequest) -> GenResult:
        by_key = {k: out for k in request.keys if (out := self.cache.get(*k)) is not None}
        if not by_key:
            return GenResult.failed(f"no oracle {self.context.task} for {request.uid!r} in {self.source}")
        first = next(iter(by_key.values()))
        return GenResult(output=first, tokens=len(first.split()), extra={"by_key": by_key})


def _single(values: set[str], what: str, path: Path) -> str:
    if len(values) != 1:
        raise BackendUnavailable(f"{path} should hold one oracle {what}, found {sorted(values)}")
    return next(iter(values))
