"""Auxiliary texts for LMA (paper §3.1) at DGM⁴ scale: captions (image -> MLLM) and explanations (text -> LLM).

Deduplicated (one generation per distinct image / text, written to every (image, text) key), batched, restartable
(append-only fsync'ed cache), sharded and merged, with statistics. The cache format is `asap.data.aux_cache`'s.

    from asap.auxtext import GenerationJob, GenContext, PromptSpec, build_backend, run_generation, merge_shards
"""

from asap.auxtext.backends import Backend, GenContext, GenRequest, GenResult, build_backend
from asap.auxtext.merge import merge_caches, merge_shards
from asap.auxtext.prompts import DEFAULT_CAPTION_PROMPT, DEFAULT_EXPLANATION_PROMPT, PromptSpec
from asap.auxtext.runner import GenerationJob, run_generation
from asap.auxtext.stats import RunStats
from asap.auxtext.work import WorkItem, build_work_items, shard_of, shard_path

__all__ = [
    "DEFAULT_CAPTION_PROMPT",
    "DEFAULT_EXPLANATION_PROMPT",
    "Backend",
    "GenContext",
    "GenRequest",
    "GenResult",
    "GenerationJob",
    "PromptSpec",
    "RunStats",
    "WorkItem",
    "build_backend",
    "build_work_items",
    "merge_caches",
    "merge_shards",
    "run_generation",
    "shard_of",
    "shard_path",
]
