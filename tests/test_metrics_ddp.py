"""DGM4Metrics under DDP: 2 CPU processes (gloo), each updating half the data, sync to the full-data result."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from asap.metrics import DGM4Metrics
from asap.metrics.collection import INPUT_NAMES
from asap.metrics.predictions import synthetic_predictions

N, L, WORLD = 400, 20, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_rows(rank: int) -> list[slice]:
    """Rank 0: the first half in 3 batches; rank 1: the second half in 2 batches (uneven cat states)."""
    return (
        [slice(0, 50), slice(50, 120), slice(120, 200)] if rank == 0 else [slice(200, 330), slice(330, 400)]
    )


def update(metric: DGM4Metrics, arrays: dict[str, np.ndarray], rows: slice) -> None:
    metric.update(*(torch.from_numpy(np.ascontiguousarray(arrays[k][rows])) for k in INPUT_NAMES))


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        arrays = synthetic_predictions(N, num_tokens=L, seed=7)
        metric = DGM4Metrics()
        for rows in rank_rows(rank):
            update(metric, arrays, rows)
        result = {k: float(v) for k, v in metric.compute().items()}  # synced by torchmetrics
        local = {k: v.item() for k, v in metric["token"].metric_state.items()}  # unsynced again after compute
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"synced": result, "local_token": local}))
    finally:
        dist.destroy_process_group()


def test_ddp_sync_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    arrays = synthetic_predictions(N, num_tokens=L, seed=7)
    single = DGM4Metrics()
    update(single, arrays, slice(0, N))
    expected = {k: float(v) for k, v in single.compute().items()}

    half = DGM4Metrics()
    for rows in rank_rows(0):
        update(half, arrays, rows)
    assert {k: float(v) for k, v in half.compute().items()} != expected  # one rank alone differs

    for rank in range(WORLD):
        got = json.loads(Path(tmp_path, f"rank{rank}.json").read_text())
        synced = got["synced"]
        assert list(synced) == list(expected)
        for key, value in expected.items():
            assert synced[key] == pytest.approx(value, abs=1e-10, nan_ok=True), (rank, key)
    token_rank0 = json.loads(Path(tmp_path, "rank0.json").read_text())["local_token"]
    assert token_rank0["tp"] == half["token"].tp.item()  # compute() restores the local state
