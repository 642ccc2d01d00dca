"""Auxiliary-text cache (LMA captions and explanations, paper §3.1), keyed by (image path, text).

One append-only JSONL file per kind. Each line records one generation attempt::

    {"image": ..., "text": ..., "output": ..., "status": "ok" | "failed", "error": ...,
     "model": ..., "prompt_hash": ..., "settings": {...}}

The key is (image, raw record text): an original and a text-swapped record can share an image, so the image path
alone is not a key. The last ``ok`` line for a key wins; ``failed`` lines never shadow an ``ok`` one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asap.errors import AuxCacheError, AuxCacheMismatchError

Key = tuple[str, str]


@dataclass(frozen=True)
class AuxEntry:
    """One cached generation."""

    image: str
    text: str
    output: str
    model: str
    prompt_hash: str
    settings: dict[str, Any] = field(default_factory=dict)


ROW_FIELDS = ("image", "text", "output", "status", "error", "model", "prompt_hash", "settings")


def format_row(
    image: str,
    text: str,
    *,
    output: str | None,
    error: str | None,
    model: str,
    prompt_hash: str,
    settings: dict[str, Any],
) -> str:
    """One cache line (with its newline), fields in the contract's order."""
    status = "ok" if output is not None else "failed"
    row = dict(
        zip(ROW_FIELDS, (image, text, output, status, error, model, prompt_hash, settings), strict=True)
    )
    return json.dumps(row, ensure_ascii=False) + "\n"


class AuxTextCache:
    """Read-only view of one cache file: ``get(image, text) -> str | None``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[Key, AuxEntry] = {}
        self._failed: dict[Key, str] = {}
        self._failed_source: dict[
            Key, tuple[str, str]
        ] = {}  # (model, prompt_hash) of the last failed attempt
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                    key = (row["image"], row["text"])
                    status = row["status"]
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    if lineno > 1 and not f.read(1):  # a torn last line from a crash: ignore it
                        break
                    raise AuxCacheError(f"{self.path}:{lineno}: not an aux-text cache line ({err})") from err
                if status == "ok":
                    output = row.get("output")
                    if not isinstance(output, str) or not output.strip():
                        raise AuxCacheError(f"{self.path}:{lineno}: status ok with an empty output for {key}")
                    self._entries[key] = AuxEntry(
                        image=key[0],
                        text=key[1],
                        output=output,
                        model=str(row.get("model", "")),
                        prompt_hash=str(row.get("prompt_hash", "")),
                        settings=dict(row.get("settings") or {}),
                    )
                    self._failed.pop(key, None)
                    self._failed_source.pop(key, None)
                elif status == "failed":
                    if key not in self._entries:
                        self._failed[key] = str(row.get("error", ""))
                        self._failed_source[key] = (
                            str(row.get("model", "")),
                            str(row.get("prompt_hash", "")),
                        )
                else:
                    raise AuxCacheError(f"{self.path}:{lineno}: unknown status {status!r}")

    def get(self, image: str, text: str) -> str | None:
        entry = self._entries.get((image, text))
        return entry.output if entry else None

    def entry(self, image: str, text: str) -> AuxEntry | None:
        return self._entries.get((image, text))

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> Iterator[Key]:
        return iter(self._entries)

    def entries(self) -> Iterator[AuxEntry]:
        return iter(self._entries.values())

    @property
    def failed(self) -> dict[Key, str]:
        """Keys whose latest attempts failed and that have no ``ok`` entry, with the last error."""
        return dict(self._failed)

    def failed_source(self, image: str, text: str) -> tuple[str, str] | None:
        """(model, prompt_hash) of the last failed attempt at a key that has no ``ok`` entry."""
        return self._failed_source.get((image, text))

    @property
    def models(self) -> set[str]:
        return {e.model for e in self._entries.values()}

    @property
    def prompt_hashes(self) -> set[str]:
        return {e.prompt_hash for e in self._entries.values()}

    def header(self) -> dict[str, Any]:
        """What made the ``ok`` entries: their models, prompt hashes and distinct settings, with the counts."""
        settings = {json.dumps(e.settings, sort_keys=True) for e in self._entries.values()}
        return {
            "path": str(self.path),
            "entries": len(self._entries),
            "failed": len(self._failed),
            "models": sorted(self.models),
            "prompt_hashes": sorted(self.prompt_hashes),
            "settings": [json.loads(x) for x in sorted(settings)],
        }

    def check_source(self, model: str, prompt_hash: str, *, what: str = "this run") -> None:
        """Raise `AuxCacheMismatchError` when ``ok`` entries come from another model or prompt."""
        other_models = self.models - {model}
        if other_models:
            raise AuxCacheMismatchError(
                f"{self.path} holds outputs of model(s) {sorted(other_models)}, but {what} uses {model!r}; "
                "write to another file, or regenerate those entries with overwrite_model_mismatch=true"
            )
        other_prompts = self.prompt_hashes - {prompt_hash}
        if other_prompts:
            raise AuxCacheMismatchError(
                f"{self.path} holds outputs made with prompt hash(es) {sorted(other_prompts)}, but {what} uses "
                f"{prompt_hash!r} (another prompt template); write to another file, or regenerate those "
                "entries with overwrite_model_mismatch=true"
            )


class AuxTextWriter:
    """Append-only writer: every line is flushed and fsync'ed, so a killed run loses no finished entry."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: str,
        prompt_hash: str,
        settings: dict[str, Any] | None = None,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.prompt_hash = prompt_hash
        self.settings = dict(settings or {})
        self.fsync = fsync
        self._repair_torn_tail()
        self._file = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        """A crash mid-write can leave a last line without its newline: drop that partial line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data[: data.rfind(b"\n") + 1]
        self.path.write_bytes(keep)

    def _write(self, image: str, text: str, output: str | None, error: str | None) -> None:
        line = format_row(
            image,
            text,
            output=output,
            error=error,
            model=self.model,
            prompt_hash=self.prompt_hash,
            settings=self.settings,
        )
        self._file.write(line)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def write_ok(self, image: str, text: str, output: str) -> None:
        if not output or not output.strip():
            raise ValueError(f"refusing to cache an empty output for ({image!r}, {text[:40]!r})")
        self._write(image, text, output, None)

    def write_failed(self, image: str, text: str, error: str) -> None:
        self._write(image, text, None, error)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AuxTextWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
