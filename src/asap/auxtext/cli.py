"""`python src/generate_aux_text.py`: the Hydra config -> generate / merge / status."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from asap.auxtext.backends import GenContext, build_backend
from asap.auxtext.merge import merge_shards
from asap.auxtext.prompts import TASKS, PromptSpec
from asap.auxtext.runner import GenerationJob, load_items, run_generation
from asap.auxtext.stats import RunStats
from asap.data.aux_cache import AuxTextCache
from asap.errors import DGM4DataError, PromptError, UserError

log = logging.getLogger(__name__)
MODES = ("generate", "merge", "status")
SUBCOMMANDS = {m: f"command={m}" for m in MODES}  # `mode` is train's config group


def rewrite_subcommand(argv: list[str]) -> list[str]:
    """`generate_aux_text.py merge ...` -> `generate_aux_text.py command=merge ...` (Hydra takes overrides only)."""
    if len(argv) > 1 and argv[1] in SUBCOMMANDS:
        return [argv[0], SUBCOMMANDS[argv[1]], *argv[2:]]
    return argv


def job_from_config(cfg: DictConfig) -> GenerationJob:
    if cfg.task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {cfg.task!r}")
    return GenerationJob(
        data_root=Path(cfg.data_root),
        metadata=Path(cfg.metadata),
        task=cfg.task,
        output=Path(cfg.output),
        split=cfg.split,
        shard=int(cfg.shard),
        num_shards=int(cfg.num_shards),
        limit=cfg.limit,
        overwrite_model_mismatch=bool(cfg.overwrite_model_mismatch),
        stats_file=Path(cfg.stats_file) if cfg.stats_file else None,
        log_every_s=float(cfg.get("log_every_s", 60.0)),
    )


def prompt_from_config(cfg: DictConfig) -> PromptSpec:
    return PromptSpec(task=cfg.task, template=cfg.prompts[cfg.task], system=cfg.prompts.get("system"))


def run_from_config(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """Dispatch on ``cfg.command``; returns the JSON-able summary it printed."""
    if console is None:
        from asap.utils.console import console
    if cfg.command not in MODES:
        raise UserError(f"command must be one of {MODES}, got {cfg.command!r}")
    try:
        return {"generate": generate, "merge": merge, "status": status}[cfg.command](cfg, console)
    except (DGM4DataError, PromptError) as err:
        raise UserError(str(err)) from err


def generate(cfg: DictConfig, console: Console) -> dict[str, Any]:
    job = job_from_config(cfg)
    context = GenContext(prompt_from_config(cfg), int(cfg.max_new_tokens), job.data_root)
    backend = build_backend(OmegaConf.to_container(cfg.aux_backend, resolve=True), context)  # type: ignore[arg-type]
    try:
        stats = run_generation(job, backend, console=console)
    finally:
        backend.close()
    _print_stats(stats, console, job.stats_path)
    return stats.to_dict()


def _print_stats(stats: RunStats, console: Console, path: Path) -> None:
    console.print(stats.table())
    failures = stats.failures_table()
    if failures is not None:
        console.print(failures)
        console.print("[yellow]failed items are recorded with their reason and retried by the next run")
    console.print(f"statistics: {path}")


def merge(cfg: DictConfig, console: Console) -> dict[str, Any]:
    num_shards = int(cfg.num_shards) if int(cfg.num_shards) > 1 else None
    inputs = [Path(p) for p in cfg.merge.inputs] if cfg.merge.inputs else None
    report = merge_shards(
        Path(cfg.output),
        num_shards=num_shards,
        inputs=inputs,
        allow_missing=bool(cfg.merge.allow_missing),
        allow_mismatch=bool(cfg.overwrite_model_mismatch),
        remove_inputs=bool(cfg.merge.remove_inputs),
    )
    summary = vars(report)
    console.print_json(json.dumps(summary))
    if report.conflicts:
        console.print(
            f"[yellow]{report.conflicts} keys had different outputs in different inputs (the last won)"
        )
    return summary


def status(cfg: DictConfig, console: Console) -> dict[str, Any]:
    """How much of the split the output (or this shard's file) covers: ok, failed, missing keys; models."""
    job = job_from_config(cfg)
    items, n_records, n_keys = load_items(job)
    cache = AuxTextCache(job.target)
    keys = [k for it in items for k in it.keys]
    ok = sum(k in cache for k in keys)
    failed = sum(k in cache.failed for k in keys)
    summary = {
        "file": str(job.target),
        "records": n_records,
        "keys": len(keys),
        "ok": ok,
        "failed": failed,
        "missing": len(keys) - ok - failed,
        **{k: v for k, v in cache.header().items() if k != "path"},
    }
    table = Table(title=f"{job.task} cache coverage of {job.split} ({job.target})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name in ("records", "keys", "ok", "failed", "missing", "models", "prompt_hashes"):
        table.add_row(name, str(summary[name]))
    console.print(table)
    return summary
