"""Run statistics: counts, throughput and the first failures, as a rich table and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

MAX_LISTED_FAILURES = 50


@dataclass
class RunStats:
    """What one generation run did (items are distinct images for captions, distinct texts for explanations)."""

    task: str
    split: str
    model: str
    prompt_hash: str
    output: str
    shard: int = 0
    num_shards: int = 1
    records: int = 0
    keys: int = 0
    items: int = 0
    skipped: int = 0
    reused: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    keys_written: int = 0
    tokens: int = 0
    gen_seconds: float = 0.0
    elapsed_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.gen_seconds if self.gen_seconds > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return (self.done + self.failed) / self.gen_seconds if self.gen_seconds > 0 else 0.0

    @property
    def pending(self) -> int:
        """Items still without an output after this run (the failed ones: the next run retries them)."""
        return self.items - self.skipped - self.reused - self.done

    def add_failure(self, uid: str, error: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_LISTED_FAILURES:
            self.failures.append({"uid": uid, "error": error})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {"tokens_per_s": round(self.tokens_per_s, 3), "items_per_s": round(self.items_per_s, 3)}
        data |= {"pending": self.pending, "gen_seconds": round(self.gen_seconds, 3)}
        return data | {"elapsed_s": round(self.elapsed_s, 3)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        return path

    def table(self) -> Table:
        shard = f" shard {self.shard}/{self.num_shards}" if self.num_shards > 1 else ""
        table = Table(title=f"{self.task} ({self.split}{shard}) -> {self.output}")
        table.add_column("what")
        table.add_column("value", justify="right")
        rows = [
            ("model", self.model),
            ("prompt hash", self.prompt_hash),
            ("records / keys", f"{self.records} / {self.keys}"),
            ("work items", str(self.items)),
            ("skipped (cached)", str(self.skipped)),
            ("reused (partly cached)", str(self.reused)),
            ("done (generated)", str(self.done)),
            ("failed (retried next run)", str(self.failed)),
            ("of which retried now", str(self.retried)),
            ("keys written", str(self.keys_written)),
            ("tokens / s", f"{self.tokens_per_s:.1f}"),
            ("items / s", f"{self.items_per_s:.2f}"),
            ("elapsed", f"{self.elapsed_s:.1f}s"),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table

    def failures_table(self, limit: int = 10) -> Table | None:
        if not self.failures:
            return None
        table = Table(title=f"{self.failed} failed (first {min(limit, len(self.failures))})")
        table.add_column("item")
        table.add_column("reason")
        for row in self.failures[:limit]:
            table.add_row(row["uid"][:60], row["error"][:160])
        return table
