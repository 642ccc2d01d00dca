"""Merge per-shard caches (and an existing output) into one canonical file: one line per key, sorted by key.

The result equals a single run's cache entry for entry; merging a single run's file gives the same bytes as
merging its shards. Keys that only failed keep one `failed` line (the next run retries them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asap.auxtext.locks import exclusive
from asap.auxtext.work import find_shard_files
from asap.data.aux_cache import AuxEntry, AuxTextCache, format_row
from asap.errors import AuxCacheMismatchError, MergeError

Key = tuple[str, str]


@dataclass
class MergeReport:
    output: str
    inputs: list[str]
    entries: int = 0
    failed: int = 0
    conflicts: int = 0
    models: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def merge_caches(inputs: Sequence[Path], output: Path, *, allow_mismatch: bool = False) -> MergeReport:
    """Merge ``inputs`` (later ones win on a key) into ``output``, written atomically."""
    missing = [str(p) for p in inputs if not Path(p).is_file()]
    if missing:
        raise MergeError(f"cache files not found: {missing}")
    caches = [AuxTextCache(p) for p in inputs]
    if not allow_mismatch:
        _check_consistent(caches)
    report = MergeReport(output=str(output), inputs=[str(p) for p in inputs])
    ok: dict[Key, AuxEntry] = {}
    for cache in caches:
        for entry in cache.entries():
            key = (entry.image, entry.text)
            if key in ok and ok[key].output != entry.output:
                report.conflicts += 1
            ok[key] = entry
    failed = _failed_rows(caches, ok)
    _write_canonical(output, ok, failed)
    report.entries, report.failed = len(ok), len(failed)
    report.models = sorted({e.model for e in ok.values()})
    return report


def merge_shards(
    output: Path,
    *,
    num_shards: int | None = None,
    inputs: Sequence[Path] | None = None,
    allow_missing: bool = False,
    allow_mismatch: bool = False,
    remove_inputs: bool = False,
) -> MergeReport:
    """Merge the shard files beside ``output`` (or the given ``inputs``) into it; an existing output is kept as the
    first input, so nothing already merged is lost."""
    output = Path(output)
    files = [Path(p) for p in inputs] if inputs else _shard_inputs(output, num_shards, allow_missing)
    with contextlib.ExitStack() as locks:  # no run may append to a file while it is merged
        for path in dict.fromkeys([output, *files]):
            if path == output or path.is_file():
                locks.enter_context(exclusive(path))
        had_output = output.stat().st_size > 0
        sources = ([output] if had_output and output not in files else []) + files
        report = merge_caches(sources, output, allow_mismatch=allow_mismatch)
    if remove_inputs:
        for path in files:
            if path != output:
                path.unlink()
                report.removed.append(str(path))
    return report


def _shard_inputs(output: Path, num_shards: int | None, allow_missing: bool) -> list[Path]:
    try:
        found = find_shard_files(output, num_shards)
    except ValueError as err:
        raise MergeError(str(err)) from err
    if not found:
        raise MergeError(f"no shard files like {output.stem}.shardI-of-N{output.suffix} in {output.parent}")
    total = num_shards or _count_from_name(next(iter(found.values())))
    absent = [i for i in range(total) if i not in found]
    if absent and not allow_missing:
        raise MergeError(
            f"shards {absent} of {total} are missing beside {output} (run them, or merge.allow_missing=true)"
        )
    return list(found.values())


def _count_from_name(path: Path) -> int:
    return int(path.stem.rsplit("-of-", 1)[1])


def _check_consistent(caches: Sequence[AuxTextCache]) -> None:
    models = {m for c in caches for m in c.models}
    hashes = {h for c in caches for h in c.prompt_hashes}
    if len(models) > 1 or len(hashes) > 1:
        detail = "; ".join(f"{c.path.name}: {sorted(c.models)} {sorted(c.prompt_hashes)}" for c in caches)
        raise AuxCacheMismatchError(
            f"refusing to merge outputs of different models or prompts ({detail}); "
            "set overwrite_model_mismatch=true to merge anyway (later files win on a key)"
        )


def _failed_rows(caches: Sequence[AuxTextCache], ok: dict[Key, AuxEntry]) -> dict[Key, tuple[str, str, str]]:
    """Keys with no ok entry anywhere: (error, model, prompt_hash) of their last failed attempt."""
    failed: dict[Key, tuple[str, str, str]] = {}
    for cache in caches:
        for key, error in cache.failed.items():
            if key not in ok:
                model, prompt_hash = cache.failed_source(*key) or ("", "")
                failed[key] = (error, model, prompt_hash)
    return failed


def _write_canonical(output: Path, ok: dict[Key, AuxEntry], failed: dict[Key, tuple[str, str, str]]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.merge-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        for key in sorted(ok.keys() | failed.keys()):
            if key in ok:
                e = ok[key]
                f.write(
                    format_row(
                        *key,
                        output=e.output,
                        error=None,
                        model=e.model,
                        prompt_hash=e.prompt_hash,
                        settings=e.settings,
                    )
                )
            else:
                error, model, prompt_hash = failed[key]
                f.write(
                    format_row(
                        *key, output=None, error=error, model=model, prompt_hash=prompt_hash, settings={}
                    )
                )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, output)
