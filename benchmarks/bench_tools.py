"""Measuring tools of benchmarks/bench.py: interleaved timing, peak memory, FLOPs, profiler ranges, matmul rate,
and the switches that turn each fast path off (benchmark-only; the model's defaults are the fast paths)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from asap.models.attention import set_fused_attn, use_fused_attn

Step = Callable[[], object]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Step, device: torch.device) -> float:
    """Wall seconds of one call (CUDA work included)."""
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def interleaved(
    fns: dict[str, Step], repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of each fn, calling them in turn `repeats` times (after `warmup` calls each).

    Interleaving makes the variants share the machine's slow and fast moments (other processes, clocks), so
    the ratio of two variants is much steadier than either time alone.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_once(fn, device))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i] (each pair measured back to back)."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def count_flops(fn: Step) -> int:
    """FLOPs of one call, as `torch.utils.flop_counter.FlopCounterMode` counts them (matmuls, convs, SDPA)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    """The machine's dense matmul rate (FLOP/s): median over `repeats` square (size x size) products."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = interleaved({"mm": lambda: a @ b}, repeats=repeats, warmup=2, device=device)["mm"]
    return 2 * size**3 / median(times)


class PeakMemory:
    """Peak CUDA memory allocated, or the process's peak RSS (reset per phase through /proc), in MiB.

    On the CPU, freed heap memory is first returned to the system (glibc malloc_trim), so the growth of the peak
    over the phase's start is the memory the step itself needs (activations, gradients, optimiser state).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start_mib = 0.0

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mib = torch.cuda.memory_allocated(self.device) / 2**20
            return
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed memory back, so RSS is the live memory
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        self.start_mib = self._status("VmRSS") or 0.0

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return self._status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    @staticmethod
    def _status(key: str) -> float | None:
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024
        return None

    def measure(self, fn: Step) -> dict[str, float]:
        """Peak (and peak above the start of the phase) over one call, in MiB."""
        self.reset()
        fn()
        synchronize(self.device)
        peak = self.peak_mib()
        return {"peak_mib": peak, "above_start_mib": max(0.0, peak - self.start_mib)}


def profiled_ranges(fn: Step, device: torch.device, prefix: str = "asap.") -> dict[str, dict[str, float]]:
    """Milliseconds inside each `record_function(prefix...)` range of one call: CPU wall and device kernels."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    ranges = {}
    for event in prof.key_averages():
        if event.key.startswith(prefix):
            device_us = getattr(event, "device_time_total", 0.0) or 0.0
            ranges[event.key[len(prefix) :]] = {
                "cpu_ms": event.cpu_time_total / 1e3,
                "device_ms": device_us / 1e3,
                "calls": event.count,
            }
    return ranges


# ---------------------------------------------------------------------- references
@contextlib.contextmanager
def explicit_attention_models() -> Iterator[None]:
    """Models built within the block compute every attention explicitly (scores, softmax, matmul): timm ViT, BERT
    (eager) and our layers, by the global switch `asap.models.attention.set_fused_attn`."""
    fused = use_fused_attn()
    set_fused_attn(False)
    try:
        yield
    finally:
        set_fused_attn(fused)


def machine_summary(device: torch.device) -> dict[str, object]:
    """What the numbers were measured on."""
    info: dict[str, object] = {
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_name(),
        "load_average_1min": os.getloadavg()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"
