"""Per-record auxiliary texts (LMA captions / explanations, paper §3.1) read from an `AuxTextCache`.

Entries are keyed by (record `image`, raw record `text`). A record without an entry is an error by default (naming
the first missing records and the count), or, with `missing="fallback"`, gets its own text (the official code's
behaviour), with the count logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asap.data.aux_cache import AuxTextCache
from asap.errors import AuxTextMissingError

log = logging.getLogger(__name__)

AUX_KINDS = ("caption", "explanation")
MISSING_POLICIES = ("error", "fallback")


@dataclass(frozen=True)
class AuxTexts:
    """Raw auxiliary text per record (own text where missing and falling back) and the missing positions."""

    texts: list[str]
    missing: list[int]


def lookup_aux_texts(
    records: Sequence[tuple[int, dict[str, Any]]],
    cache_path: str | Path,
    *,
    kind: str,
    split: str,
    missing: str = "error",
    show: int = 5,
) -> AuxTexts:
    """`(split index, record)` pairs -> their cached `kind` texts; see the module docstring for the policy."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing_aux must be one of {MISSING_POLICIES}, got {missing!r}")
    cache_path = Path(cache_path)
    if not cache_path.is_file() and missing == "error":
        raise AuxTextMissingError(
            f"{kind} cache not found: {cache_path} (needed for split {split!r}); generate it with "
            f"src/generate_aux_text.py, or set missing_aux=fallback to use each record's own text"
        )
    cache = AuxTextCache(cache_path)
    texts: list[str] = []
    absent: list[int] = []
    for pos, (_, record) in enumerate(records):
        output = cache.get(record["image"], record["text"])
        if output is None:
            absent.append(pos)
            output = record["text"]
        texts.append(output)
    if absent:
        _report_missing(records, absent, cache_path, kind=kind, split=split, missing=missing, show=show)
    return AuxTexts(texts=texts, missing=absent)


def _report_missing(
    records: Sequence[tuple[int, dict[str, Any]]],
    absent: list[int],
    cache_path: Path,
    *,
    kind: str,
    split: str,
    missing: str,
    show: int,
) -> None:
    head = f"{len(absent)} of {len(records)} {split} records have no {kind} in {cache_path}"
    if missing == "fallback":
        log.warning("%s; they use their own text instead (missing_aux=fallback)", head)
        return
    examples = "\n".join(
        f"  #{records[p][0]} (id={records[p][1].get('id')}) image={records[p][1]['image']!r} "
        f"text={records[p][1]['text'][:60]!r}"
        for p in absent[:show]
    )
    raise AuxTextMissingError(
        f"{head}; first {min(show, len(absent))}:\n{examples}\n(set missing_aux=fallback to use each record's own text)"
    )
