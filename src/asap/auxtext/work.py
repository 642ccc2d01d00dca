"""Distinct work items of a split and their deterministic shards.

A cache key is (record `image`, raw record `text`). Captions depend on the image only and explanations on the text
only, so one generation serves every key that shares the image (caption) or the text (explanation).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asap.auxtext.prompts import TASKS
from asap.data.records import record_ref
from asap.errors import DGM4DataError

Key = tuple[str, str]
_SHARD_NAME = re.compile(r"\.shard(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class WorkItem:
    """One generation: ``uid`` is the image path (caption) or the text (explanation); ``keys`` it fills."""

    uid: str
    keys: tuple[Key, ...]

    @property
    def image(self) -> str:
        return self.keys[0][0]

    @property
    def text(self) -> str:
        return self.keys[0][1]


def record_key(record: Any, index: int) -> Key:
    """(image, text) of one record; a clear error naming the record when either is missing or not a string."""
    if not isinstance(record, dict):
        raise DGM4DataError(f"record {record_ref(record, index)} is not a JSON object")
    image, text = record.get("image"), record.get("text")
    if not isinstance(image, str) or not image:
        raise DGM4DataError(f"record {record_ref(record, index)} has no `image` path")
    if not isinstance(text, str):
        raise DGM4DataError(f"record {record_ref(record, index)} has no `text` string")
    return image, text


def build_work_items(records: Sequence[Any], task: str) -> list[WorkItem]:
    """Group the records' distinct keys by image (caption) or text (explanation), in first-appearance order."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    groups: dict[str, dict[Key, None]] = {}
    for index, record in enumerate(records):
        key = record_key(record, index)
        uid = key[0] if task == "caption" else key[1]
        groups.setdefault(uid, {})[key] = None
    return [WorkItem(uid=uid, keys=tuple(keys)) for uid, keys in groups.items()]


def shard_of(uid: str, num_shards: int) -> int:
    """Stable shard of a work item (sha1 of its uid): the same on every node, whatever the record order."""
    digest = hashlib.sha1(uid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def select_shard(items: Iterable[WorkItem], shard: int, num_shards: int) -> list[WorkItem]:
    """The items of shard ``shard`` out of ``num_shards``."""
    check_shard(shard, num_shards)
    if num_shards == 1:
        return list(items)
    return [it for it in items if shard_of(it.uid, num_shards) == shard]


def check_shard(shard: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"need 0 <= shard < num_shards, got shard={shard} num_shards={num_shards}")


def shard_path(output: str | Path, shard: int, num_shards: int) -> Path:
    """`caption.jsonl` -> `caption.shard2-of-8.jsonl`; the output itself when there is one shard."""
    output = Path(output)
    check_shard(shard, num_shards)
    if num_shards == 1:
        return output
    return output.with_name(f"{output.stem}.shard{shard}-of-{num_shards}{output.suffix}")


def find_shard_files(output: str | Path, num_shards: int | None = None) -> dict[int, Path]:
    """The shard files written beside ``output`` ({shard: path}); one shard count only."""
    output = Path(output)
    found: dict[int, dict[int, Path]] = {}
    for path in output.parent.glob(f"{output.stem}.shard*-of-*{output.suffix}"):
        match = _SHARD_NAME.search(path.name[: len(path.name) - len(output.suffix)])
        if match:
            found.setdefault(int(match[2]), {})[int(match[1])] = path
    if num_shards is not None:
        return dict(sorted(found.get(num_shards, {}).items()))
    if len(found) > 1:
        raise ValueError(
            f"shard files for several shard counts {sorted(found)} beside {output}; pass num_shards=N to choose"
        )
    return dict(sorted(next(iter(found.values()), {}).items()))
