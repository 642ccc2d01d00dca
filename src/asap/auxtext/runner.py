"""The generation loop: plan the distinct work of a split, skip what is cached, generate the rest, write every key.

Restartable: every finished key is one fsync'ed line, so a run killed at any moment and started again skips what
is done and writes nothing twice (an item killed between its keys gets its cached output copied, not regenerated).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from asap.auxtext.backends.base import Backend, GenRequest, GenResult
from asap.auxtext.locks import exclusive
from asap.auxtext.stats import RunStats
from asap.auxtext.work import Key, WorkItem, build_work_items, select_shard, shard_path
from asap.data.aux_cache import AuxTextCache, AuxTextWriter
from asap.data.records import load_split
from asap.errors import BackendUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationJob:
    """Where to read the split, what to generate and where to write it."""

    data_root: Path
    metadata: Path
    task: str
    output: Path
    split: str = "train"
    shard: int = 0
    num_shards: int = 1
    limit: int | None = None
    overwrite_model_mismatch: bool = False
    stats_file: Path | None = None
    log_every_s: float = 60.0

    @property
    def target(self) -> Path:
        """The file this run appends to: the output, or this shard's file beside it."""
        return shard_path(self.output, self.shard, self.num_shards)

    @property
    def stats_path(self) -> Path:
        return self.stats_file or self.target.with_suffix(".stats.json")


@dataclass
class Plan:
    """Items to generate, items whose output is cached for some keys only, and the count already complete."""

    todo: list[WorkItem] = field(default_factory=list)
    reuse: list[tuple[WorkItem, str]] = field(default_factory=list)
    skipped: int = 0


def load_items(job: GenerationJob) -> tuple[list[WorkItem], int, int]:
    """This shard's work items (first `limit` only when set), with the split's record and key counts."""
    records = load_split(job.metadata)
    items = build_work_items(records, job.task)
    keys = sum(len(it.keys) for it in items)
    items = select_shard(items, job.shard, job.num_shards)
    return (items[: job.limit] if job.limit is not None else items), len(records), keys


def known_outputs(
    job: GenerationJob, model: str, prompt_hash: str, settings: dict
) -> tuple[dict[Key, str], set[Key]]:
    """Outputs this model and prompt already made (this run's file, plus the merged output for a shard), and the
    keys whose last attempt failed. Another model's entries stop the run unless `overwrite_model_mismatch`."""
    sources = [job.target] + ([job.output] if job.target != job.output and job.output.exists() else [])
    known: dict[Key, str] = {}
    failed: set[Key] = set()
    for path in sources:
        cache = AuxTextCache(path)
        if not job.overwrite_model_mismatch:
            cache.check_source(model, prompt_hash)
        for entry in cache.entries():
            if entry.model == model and entry.prompt_hash == prompt_hash:
                known[(entry.image, entry.text)] = entry.output
        failed |= set(cache.failed)
        _warn_other_settings(cache, settings)
    return known, failed - set(known)


def _warn_other_settings(cache: AuxTextCache, settings: dict) -> None:
    """Same model and prompt, other generation settings (e.g. max_new_tokens): kept, but said."""
    other = [e for e in cache.entries() if e.settings != settings]
    if other:
        log.warning(
            "%d entries of %s were made with other settings (e.g. %s; now %s); they are kept",
            len(other),
            cache.path,
            other[0].settings,
            settings,
        )


def plan_work(items: Sequence[WorkItem], known: dict[Key, str]) -> Plan:
    plan = Plan()
    for item in items:
        have = [known[k] for k in item.keys if k in known]
        if len(have) == len(item.keys):
            plan.skipped += 1
        elif have:
            plan.reuse.append((item, have[0]))
        else:
            plan.todo.append(item)
    return plan


def make_request(job: GenerationJob, backend: Backend, item: WorkItem) -> GenRequest:
    prompt = backend.context.prompt
    if job.task == "caption":
        return GenRequest(item.uid, prompt.render(), image_path=job.data_root / item.image, keys=item.keys)
    return GenRequest(item.uid, prompt.render(item.text), keys=item.keys)


def safe_generate(backend: Backend, requests: Sequence[GenRequest]) -> list[GenResult]:
    """Results for a batch; a batch that raises is retried one by one, so one bad sample fails alone."""
    try:
        results = backend.generate(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"backend returned {len(results)} results for {len(requests)} requests")
        return results
    except BackendUnavailable:
        raise
    except Exception as err:  # noqa: BLE001 - any model error fails the sample, never the run
        if len(requests) == 1:
            log.debug("generation failed for %r", requests[0].uid, exc_info=True)
            return [GenResult.failed(err)]
        log.warning("a batch of %d failed (%s); retrying one by one", len(requests), err)
        return [safe_generate(backend, [r])[0] for r in requests]


def run_generation(job: GenerationJob, backend: Backend, console: Console | None = None) -> RunStats:
    """Fill the cache for one task / split / shard; returns (and saves) the statistics."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    items, n_records, n_keys = load_items(job)
    stats = _new_stats(job, backend, records=n_records, keys=n_keys, items=len(items))
    with exclusive(job.target):
        settings = backend.settings()
        known, failed_keys = known_outputs(job, backend.model_name, backend.prompt_hash, settings)
        plan = plan_work(items, known)
        stats.skipped = plan.skipped
        stats.retried = sum(any(k in failed_keys for k in it.keys) for it in plan.todo)
        _log_plan(job, backend, plan, stats)
        with AuxTextWriter(
            job.target, model=backend.model_name, prompt_hash=backend.prompt_hash, settings=settings
        ) as writer:
            for item, output in plan.reuse:
                stats.keys_written += _write_ok(writer, item, GenResult(output=output), known)
                stats.reused += 1
            if plan.todo:
                backend.load()
                _generate_all(job, backend, plan.todo, writer, stats, console)
    stats.elapsed_s = time.perf_counter() - started
    stats.save(job.stats_path)
    return stats


def _new_stats(job: GenerationJob, backend: Backend, **counts: int) -> RunStats:
    return RunStats(
        task=job.task,
        split=job.split,
        model=backend.model_name,
        prompt_hash=backend.prompt_hash,
        output=str(job.target),
        shard=job.shard,
        num_shards=job.num_shards,
        **counts,
    )


def _log_plan(job: GenerationJob, backend: Backend, plan: Plan, stats: RunStats) -> None:
    log.info(
        "%s %s -> %s: %d items, %d cached, %d partly cached, %d to generate (%d retried) with %s",
        job.task, job.split, job.target, stats.items, plan.skipped, len(plan.reuse), len(plan.todo),
        stats.retried, backend.model_name,
    )  # fmt: skip


def _generate_all(
    job: GenerationJob,
    backend: Backend,
    todo: list[WorkItem],
    writer: AuxTextWriter,
    stats: RunStats,
    console: Console,
) -> None:
    with _progress(console) as progress:
        bar = progress.add_task(f"{job.task} {job.split}", total=len(todo), rate="", ok=0, failed=0)
        last_log = time.perf_counter()
        for start in range(0, len(todo), max(1, backend.batch_size)):
            batch = todo[start : start + max(1, backend.batch_size)]
            t0 = time.perf_counter()
            results = safe_generate(backend, [make_request(job, backend, it) for it in batch])
            stats.gen_seconds += time.perf_counter() - t0
            for item, result in zip(batch, results, strict=True):
                _record(writer, item, result, stats)
            rate = f"{stats.items_per_s:.2f} it/s {stats.tokens_per_s:.0f} tok/s"
            progress.update(bar, advance=len(batch), rate=rate, ok=stats.done, failed=stats.failed)
            if time.perf_counter() - last_log >= job.log_every_s:  # for log files, where no bar is drawn
                last_log = time.perf_counter()
                _log_progress(stats, len(todo), rate)


def _log_progress(stats: RunStats, total: int, rate: str) -> None:
    finished = stats.done + stats.failed
    eta = (total - finished) / stats.items_per_s if stats.items_per_s else float("nan")
    log.info("%d/%d generated (%d failed), %s, eta %.0f min", finished, total, stats.failed, rate, eta / 60)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("ok {task.fields[ok]} [red]failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )


def _record(writer: AuxTextWriter, item: WorkItem, result: GenResult, stats: RunStats) -> None:
    """Write an ok output to every key of the item, or a failed line (with the reason) to each."""
    output = (result.output or "").strip() if result.error is None else ""
    if not output:
        reason = result.error or "empty output"
        for image, text in item.keys:
            writer.write_failed(image, text, reason)
        stats.add_failure(item.uid, reason)
        return
    result.output = output
    stats.keys_written += _write_ok(writer, item, result, {})
    stats.done += 1
    stats.tokens += result.tokens


def _write_ok(writer: AuxTextWriter, item: WorkItem, result: GenResult, skip: dict[Key, str]) -> int:
    written = 0
    for key in item.keys:
        if key in skip:
            continue
        output = result.extra.get("by_key", {}).get(key, result.output)
        writer.write_ok(key[0], key[1], output)
        written += 1
    return written
