"""Generation backends, chosen in config (`aux_backend=...`) by their `_target_` class.

| name | class | what |
|---|---|---|
| transformers | `hf.TransformersBackend` | in-process Hugging Face model (GPU bf16 when present), optional GGUF |
| openai | `openai_compat.OpenAIBackend` | any OpenAI-compatible server, thread pool, retries |
| vllm | `vllm_backend.VLLMBackend` | vLLM's offline engine (optional install) |
| oracle | `oracle.OracleBackend` | the synthetic set's ground truth |
| echo | `echo.EchoBackend` | deterministic placeholder text, for pipeline checks and tests |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asap.auxtext.backends.base import Backend, GenContext, GenRequest, GenResult, ImageReadError
from asap.errors import UserError

__all__ = [
    "Backend",
    "GenContext",
    "GenRequest",
    "GenResult",
    "ImageReadError",
    "build_backend",
]


def build_backend(spec: Mapping[str, Any], context: GenContext) -> Backend:
    """A backend from its config: ``{"_target_": "pkg.Class", **params}`` -> ``Class(context, **params)``."""
    from hydra.utils import get_class

    params = dict(spec)
    target = params.pop("_target_", None)
    if not target:
        raise ValueError(f"aux_backend needs a _target_ class, got {sorted(spec)}")
    try:
        cls = get_class(target)
    except ImportError as err:
        raise UserError(f"aux_backend: cannot import {target}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UserError(f"aux_backend: {target} is not an asap.auxtext Backend")
    try:
        return cls(context, **params)
    except (TypeError, ValueError) as err:  # an unknown option or a bad value in the config
        raise UserError(f"aux_backend ({target}): {err}") from err
