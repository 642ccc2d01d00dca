"""`make bench`: speed, memory and FLOP use of ASAP, `baseline` against `full` on the same encoders, the user options
(bf16, torch.compile) and fused attention against their references, training FLOPs at other text lengths, and the
data loader against the model; a rich table on screen and JSON under logs/bench/.

Everything is built from the Hydra config (conf/train.yaml, as `make train`), on one real batch of the synthetic
set (generated under the config's data root on first use). Times are medians of interleaved repeats; ratios are
medians of back-to-back pairs, so other load on the machine cancels as far as it can. The machine's dense matmul
rate is measured in the same run, and the model's achieved FLOP/s is given as a fraction of it.

    python benchmarks/bench.py                                   # tiny model, batch 32, CPU (a few minutes)
    python benchmarks/bench.py --model asap_base --precision bf16     # the paper's model on a GPU
    python benchmarks/bench.py --sections model data --repeats 9 --threads 0     # torch's thread count
    python benchmarks/bench.py --fast-paths attention compile --override model.text_encoder.text_layers=1
    python benchmarks/bench.py --model asap_base --batch-size 2 --sections flops --lengths 30,40,64 30,40,100
    python benchmarks/bench.py --model asap_base --momentum     # momentum encoders + queues on, as the paper trains

--momentum / --no-momentum switch the momentum encoders, queues and distillation (model.momentum.enabled) on or off
in both models; by default the model config's own setting (off in tiny and asap_base; on in experiment=asap_full).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from bench_tools import (
    PeakMemory,
    count_flops,
    explicit_attention_models,
    interleaved,
    machine_summary,
    matmul_rate,
    median,
    paired_ratio,
    profiled_ranges,
    time_once,
)
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from rich.table import Table
from torch import Tensor

import asap.conf  # noqa: F401  (registers the config resolvers and group schemas)
from asap.data.image_cache import ImageCache
from asap.labels import IGNORE_INDEX
from asap.losses import LossWeights, total_loss
from asap.models.asap import ASAPModel, ASAPOutput
from asap.models.optim import build_optimizer
from asap.models.text_encoder import AUX_TEXTS
from asap.pipeline.common import build_lit_module
from asap.utils.console import console  # full width off a terminal (a log, `| tee`)

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("model", "terms", "fast", "flops", "data")
# batch keys (ids, mask) of each text kind (docs/contracts.md)
TEXT_KEYS = {"text": ("input_ids", "attention_mask"), **{k: (f"{k}_ids", f"{k}_mask") for k in AUX_TEXTS}}
FAST_PATHS = ("attention", "bf16", "compile")  # each against its reference: explicit attention, fp32, eager
FILLER_ID = 1996  # "the" in bert-base-uncased: fills the texts of the flops section's --lengths settings
TARGETS = {"infer_ratio": 1.05, "train_ratio": 1.35, "data_over_model": 3.0}
INFER_REPEATS = 3  # inference steps are short: time this many times more of them than training steps


# ---------------------------------------------------------------------- config, batch, model
def compose_config(args: argparse.Namespace, ablation: str) -> DictConfig:
    """conf/train.yaml with the benchmark's model, ablation and batch size (bundled tokenizer: no download)."""
    overrides = [
        f"model={args.model}",
        f"ablation={ablation}",
        f"data.batch_size={args.batch_size}",
        "model.tokenizer=${bundled_bert_tokenizer:}",
        *([] if args.momentum is None else [f"model.momentum.enabled={str(args.momentum).lower()}"]),
        *([f"data.root={args.data_root}"] if args.data_root else []),
        *args.override,
    ]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


def first_train_batch(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """The first (seeded) training batch of the configured data set, on `device`."""
    datamodule = hydra.utils.instantiate(cfg.data, num_workers=0)
    datamodule.setup("fit")
    torch.manual_seed(0)
    batch = next(iter(datamodule.train_dataloader()))
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def token_lengths(batch: dict[str, Any]) -> dict[str, int]:
    """Padded token length of each text kind in `batch`."""
    return {kind: batch[ids].shape[1] for kind, (ids, _) in TEXT_KEYS.items() if ids in batch}


def real_token_lengths(batch: dict[str, Any]) -> dict[str, float]:
    """Mean number of real (unpadded) tokens of each text kind in `batch`."""
    return {
        kind: batch[mask].sum(1).float().mean().item()
        for kind, (_, mask) in TEXT_KEYS.items()
        if mask in batch
    }


def batch_summary(batch: dict[str, Any]) -> dict[str, Any]:
    """Padded token lengths of the benchmark batch and its image size."""
    return {
        "size": batch["input_ids"].shape[0],
        "tokens": token_lengths(batch),
        "image": list(batch["image"].shape[1:]),
    }


def with_lengths(batch: dict[str, Any], lengths: dict[str, int]) -> dict[str, Any]:
    """`batch` with every sample's text of each kind exactly `lengths[kind]` real tokens: cut, or its padding and
    the added positions filled with a word-piece (mask 1, token label 0). FLOPs follow the real tokens (the
    packed rows skip padding), so the lengths are made of real tokens."""
    out = dict(batch)
    for kind, length in lengths.items():
        ids, mask = TEXT_KEYS[kind]
        real = batch[mask].bool()  # (B, L)
        out[ids] = _fit(batch[ids].masked_fill(~real, FILLER_ID), length, FILLER_ID)  # (B, length)
        out[mask] = torch.ones_like(out[ids])
        if kind == "text":
            labels = batch["token_labels"].masked_fill(batch["token_labels"] == IGNORE_INDEX, 0)
            out["token_labels"] = _fit(labels, length - 1, 0)  # (B, length-1)
    return out


def _fit(t: Tensor, length: int, fill: int) -> Tensor:
    """(B, L) -> (B, length): cut, or extended on the right with `fill`."""
    if t.shape[1] >= length:
        return t[:, :length]
    return torch.cat([t, t.new_full((t.shape[0], length - t.shape[1]), fill)], dim=1)


@dataclass
class Runner:
    """One model with its optimiser and loss weights, stepping on one fixed batch."""

    name: str
    model: ASAPModel
    weights: LossWeights
    batch: dict[str, Any]
    device: torch.device
    bf16: bool
    cfg: DictConfig  # what built the model

    def __post_init__(self) -> None:
        self.optimizer = build_optimizer(self.model, lr=1e-4)

    def _autocast(self, bf16: bool | None) -> torch.autocast:
        enabled = self.bf16 if bf16 is None else bf16
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def forward_backward(self, bf16: bool | None = None) -> None:
        self.model.train()
        with self._autocast(bf16):
            loss = total_loss(self.model(self.batch).losses, self.weights)  # eq. 13
        loss.backward()

    def train_step(self, bf16: bool | None = None) -> None:
        """Forward, eq. 13, backward, AdamW step (what Lightning's training step does)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_backward(bf16)
        self.optimizer.step()

    @torch.no_grad()
    def infer_step(self, bf16: bool | None = None) -> ASAPOutput:
        self.model.eval()
        with self._autocast(bf16):
            return self.model(self.batch)


def build_runner(
    args: argparse.Namespace, ablation: str, cfg: DictConfig, batch: dict[str, Any], device: torch.device
) -> Runner:
    """The model of `cfg` (`ablation`'s config, composed once: composing costs ~0.4 s) on `batch`."""
    torch.manual_seed(0)  # the same seed: the same encoder weights for every ablation
    module = build_lit_module(cfg)
    model = module.model.to(device)
    bf16 = args.precision == "bf16"
    return Runner(ablation, model, module.loss_weights, batch, device, bf16=bf16, cfg=cfg)


def same_encoders(a: ASAPModel, b: ASAPModel) -> bool:
    encoders = ("image_encoder", "text_encoder")
    return all(
        torch.equal(p, q)
        for name in encoders
        for p, q in zip(a.get_submodule(name).parameters(), b.get_submodule(name).parameters(), strict=True)
    )


def output_difference(a: ASAPOutput, b: ASAPOutput) -> float:
    """Largest absolute difference of the predicted probabilities and box coordinates."""
    pairs = [
        (a.binary_logits.float().softmax(-1), b.binary_logits.float().softmax(-1)),
        (a.multilabel_logits.float().sigmoid(), b.multilabel_logits.float().sigmoid()),
        (a.box_pred.float(), b.box_pred.float()),
        (a.token_logits.float().softmax(-1), b.token_logits.float().softmax(-1)),
    ]
    return max((x - y).abs().max().item() for x, y in pairs)


# ---------------------------------------------------------------------- sections
def bench_model(runners: dict[str, Runner], args: argparse.Namespace) -> dict[str, Any]:
    """Train and inference time, FLOPs, fraction of the matmul rate, peak memory; baseline and full interleaved."""
    device, B = args.device, args.batch_size
    train = interleaved({n: r.train_step for n, r in runners.items()}, args.repeats, args.warmup, device)
    infer_repeats = INFER_REPEATS * args.repeats
    infer = interleaved({n: r.infer_step for n, r in runners.items()}, infer_repeats, args.warmup, device)
    results: dict[str, Any] = {}
    for name, runner in runners.items():
        memory = PeakMemory(device)
        train_flops = count_flops(runner.forward_backward)
        infer_flops = count_flops(runner.infer_step)
        train_s, infer_s = median(train[name]), median(infer[name])
        results[name] = {
            "train_s": train[name],
            "infer_s": infer[name],
            "train_samples_per_s": B / train_s,
            "infer_samples_per_s": B / infer_s,
            "train_gflop": train_flops / 1e9,
            "infer_gflop": infer_flops / 1e9,
            "train_memory": memory.measure(runner.train_step),
            "infer_memory": memory.measure(runner.infer_step),
        }
    if {"baseline", "full"} <= set(runners):
        base, full = results["baseline"], results["full"]
        results["full_over_baseline"] = {
            "train_time": paired_ratio(train["full"], train["baseline"]),
            "infer_time": paired_ratio(infer["full"], infer["baseline"]),
            "train_flops": full["train_gflop"] / base["train_gflop"],
            "infer_flops": full["infer_gflop"] / base["infer_gflop"],
        }
    return results


def add_flop_fractions(model: dict[str, Any], matmul_flops: float) -> None:
    """Achieved FLOP/s (counted FLOPs / median step time) as a fraction of the machine's dense matmul rate."""
    for result in model.values():
        if "train_gflop" in result:
            for mode in ("train", "infer"):
                achieved = result[f"{mode}_gflop"] * 1e9 / median(result[f"{mode}_s"])
                result[f"{mode}_tflops"] = achieved / 1e12
                result[f"{mode}_flop_fraction"] = achieved / matmul_flops


def bench_flops(runners: dict[str, Runner], lengths: list[dict[str, int]]) -> list[dict[str, Any]]:
    """Training-step GFLOP per sample of each runner on its batch and at each of `lengths`, and full / baseline."""
    rows = []
    for setting in [{}, *lengths]:  # {}: the batch as loaded
        shown = with_lengths(runners["full"].batch, setting)
        row: dict[str, Any] = {"tokens": token_lengths(shown), "real_tokens": real_token_lengths(shown)}
        for name, runner in runners.items():
            batch = runner.batch
            runner.batch = with_lengths(batch, setting)
            try:
                row[name] = count_flops(runner.forward_backward) / batch["input_ids"].shape[0] / 1e9
            finally:
                runner.batch = batch
        row["full_over_baseline"] = row["full"] / row["baseline"]
        rows.append(row)
    return rows


def bench_terms(runners: dict[str, Runner]) -> dict[str, Any]:
    """Forward milliseconds of each part and loss term (profiler ranges `asap.*`) in one training step."""
    return {name: profiled_ranges(r.forward_backward, r.device) for name, r in runners.items()}


def _pair(runner: Runner, before: Any, after: Any, modes: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Time `before` and `after` (callables taking the mode) interleaved, per mode."""
    out = {}
    for mode in modes:
        times = interleaved(
            {"before": lambda m=mode: before(m), "after": lambda m=mode: after(m)},
            args.fast_repeats * (INFER_REPEATS if mode == "infer" else 1),
            args.warmup,
            args.device,
        )
        out[mode] = {
            "before_s": median(times["before"]),
            "after_s": median(times["after"]),
            "speedup": paired_ratio(times["before"], times["after"]),
        }
    return out


def _step(runner: Runner, mode: str, **kwargs: Any) -> Any:
    return runner.train_step(**kwargs) if mode == "train" else runner.infer_step(**kwargs)


def bench_fast_paths(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    """Fused attention, bf16 and torch.compile, each against its reference (before) on the `full` model."""
    both = ("train", "infer")
    results: dict[str, Any] = {}
    if "attention" in args.fast_paths:
        with explicit_attention_models():  # the global switch, read when the model is built
            explicit = build_runner(args, runner.name, runner.cfg, runner.batch, runner.device)
        results["attention"] = {
            "label": "fused attention (vs all explicit)",
            **_pair(runner, lambda mode: _step(explicit, mode), lambda mode: _step(runner, mode), both, args),
        }
    if "bf16" in args.fast_paths:
        results["bf16"] = {
            "label": "bf16 autocast (vs fp32)",
            **_pair(
                runner,
                lambda mode: _step(runner, mode, bf16=False),
                lambda mode: _step(runner, mode, bf16=True),
                both,
                args,
            ),
            "max_output_difference": output_difference(runner.infer_step(False), runner.infer_step(True)),
        }
    if "compile" in args.fast_paths:
        results["compile"] = bench_compile(runner, args)
    return results


def bench_compile(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    """torch.compile of the encoders (model.compile=true): compile time, then eager vs compiled."""
    compiled_model = copy.deepcopy(runner.model)
    compiled_model.compile_encoders()
    compiled = Runner(
        "compiled", compiled_model, runner.weights, runner.batch, runner.device, runner.bf16, runner.cfg
    )
    first_call_s = {"infer": time_once(compiled.infer_step, args.device)}  # includes compiling
    difference = output_difference(runner.infer_step(), compiled.infer_step())  # same weights: before a step
    first_call_s["train"] = time_once(compiled.train_step, args.device)
    pair = _pair(runner, lambda m: _step(runner, m), lambda m: _step(compiled, m), ("train", "infer"), args)
    return {
        "label": "torch.compile encoders (vs eager)",
        **pair,
        "first_call_s": first_call_s,
        "max_output_difference": difference,
    }


def loader_rate(cfg: DictConfig, batches: int, image_cache: str | None = None) -> dict[str, float]:
    """Samples/s of the training DataLoader alone (configured workers), after its first batch."""
    datamodule = hydra.utils.instantiate(cfg.data, image_cache=image_cache)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batches = min(batches, len(loader) - 1)
    started = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first_s = time.perf_counter() - started
    started, samples = time.perf_counter(), 0
    for _ in range(batches):
        samples += len(next(iterator)["ids"])
    elapsed = time.perf_counter() - started
    del iterator
    return {"samples_per_s": samples / elapsed, "first_batch_s": first_s, "samples": samples}


def bench_data(cfg: DictConfig, args: argparse.Namespace, model_train_rate: float | None) -> dict[str, Any]:
    """The loader without and with the pre-resized image cache (filled first), against the model's rate."""
    plain = loader_rate(cfg, args.data_batches)
    with tempfile.TemporaryDirectory(prefix="asap-image-cache-") as cache_dir:
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.setup("fit")
        dataset, cache = datamodule.datasets["train"], ImageCache(cache_dir, cfg.data.image_size)
        started = time.perf_counter()
        for _, record in dataset.entries:
            cache.load(dataset.root / record["image"])
        fill_rate = len(dataset.entries) / (time.perf_counter() - started)
        cached = loader_rate(cfg, args.data_batches, image_cache=cache_dir)
    result = {
        "num_workers": cfg.data.num_workers,
        "image_size": cfg.data.image_size,
        "no_cache": plain,
        "cache_fill_images_per_s": fill_rate,
        "cache_warm": cached,
        "cache_speedup": cached["samples_per_s"] / plain["samples_per_s"],
    }
    if model_train_rate:
        result["model_train_samples_per_s"] = model_train_rate
        result["loader_over_model"] = plain["samples_per_s"] / model_train_rate
    return result


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    ratios = results.get("model", {}).get("full_over_baseline")
    if ratios:
        rows.append(
            _target("full / baseline inference time", ratios["infer_time"], "<=", TARGETS["infer_ratio"])
        )
        rows.append(
            _target("full / baseline training step", ratios["train_time"], "<=", TARGETS["train_ratio"])
        )
    data = results.get("data", {})
    if "loader_over_model" in data:
        rows.append(
            _target(
                "data loading / model training rate",
                data["loader_over_model"],
                ">=",
                TARGETS["data_over_model"],
            )
        )
    return rows


def _target(name: str, value: float, op: str, limit: float) -> dict[str, Any]:
    met = value <= limit if op == "<=" else value >= limit
    return {"target": name, "value": value, "limit": f"{op} {limit}", "met": met}


# ---------------------------------------------------------------------- report
def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    console.print(
        f"[bold]{m['device']}[/] {m.get('gpu', m['cpu'])}, torch {m['torch']}, {m['torch_threads']} threads, "
        f"load {m['load_average_1min']:.1f} -> {m['load_average_1min_end']:.1f}; dense matmul "
        f"{m['matmul_tflops']:.3f} TFLOP/s ({m['matmul_dtype']})"
    )
    if "batch" in results:
        b = results["batch"]
        console.print(f"batch: {b['size']} x image {b['image']}, tokens {b['tokens']}")
    if "model" in results:
        console.print(_model_table(results["model"], results["settings"]))
    if "terms" in results:
        console.print(_terms_table(results["terms"]))
    if "fast_paths" in results:
        console.print(_fast_table(results["fast_paths"]))
    if "flops" in results:
        console.print(_flops_table(results["flops"]))
    if "data" in results:
        console.print(_data_table(results["data"]))
    if results.get("targets"):
        table = Table(title="Targets")
        for column in ("target", "value", "limit", "met"):
            table.add_column(column)
        for row in results["targets"]:
            met = "[green]yes[/]" if row["met"] else "[red]no[/]"
            table.add_row(row["target"], f"{row['value']:.2f}", row["limit"], met)
        console.print(table)


def _model_table(model: dict[str, Any], settings: dict[str, Any]) -> Table:
    title = f"Model {settings['model']}, batch {settings['batch_size']}, precision {settings['precision']}"
    title += f", momentum {'on' if settings.get('momentum_enabled') else 'off'}"
    table = Table(
        title=title, caption="% matmul: achieved FLOP/s over the dense matmul rate; peak (+ over start)"
    )
    for column in ("", "samples/s", "GFLOP/step", "% matmul", "peak MiB"):
        table.add_column(column, justify="right")
    for name, r in model.items():
        if name == "full_over_baseline":
            continue
        for mode in ("train", "infer"):
            memory = r[f"{mode}_memory"]
            table.add_row(
                f"{name} {mode}",
                f"{r[f'{mode}_samples_per_s']:.1f}",
                f"{r[f'{mode}_gflop']:.2f}",
                f"{100 * r[f'{mode}_flop_fraction']:.1f}",
                f"{memory['peak_mib']:.0f} (+{memory['above_start_mib']:.0f})",
            )
    ratio = model.get("full_over_baseline")
    if ratio:
        for mode in ("train", "infer"):
            table.add_row(
                f"full/baseline {mode}",
                f"time x{ratio[f'{mode}_time']:.2f}",
                f"x{ratio[f'{mode}_flops']:.2f}",
            )
    return table


def _terms_table(terms: dict[str, Any]) -> Table:
    table = Table(title="Forward ms per part and loss term (one training step, profiler; backward not split)")
    table.add_column("range")
    names = sorted({key for ranges in terms.values() for key in ranges})
    for ablation in terms:
        table.add_column(ablation, justify="right")
    for key in names:
        cells = []
        for ranges in terms.values():
            r = ranges.get(key)
            cells.append("-" if r is None else f"{r['device_ms'] or r['cpu_ms']:.1f}")
        table.add_row(key, *cells)
    return table


def _flops_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Training-step GFLOP per sample at text lengths (first row: the batch as loaded, padded (mean real); "
        "then every sample that long)"
    )
    for column in ("text / caption / explanation tokens", "baseline", "full", "full / baseline"):
        table.add_column(column, justify="right")
    for row in rows:
        lengths = " / ".join(str(row["tokens"].get(k, "-")) for k in TEXT_KEYS)
        if row["real_tokens"] != row["tokens"]:
            lengths += " (" + " / ".join(f"{row['real_tokens'][k]:.1f}" for k in row["real_tokens"]) + ")"
        table.add_row(
            lengths, f"{row['baseline']:.3f}", f"{row['full']:.3f}", f"x{row['full_over_baseline']:.2f}"
        )
    return table


def _fast_table(fast: dict[str, Any]) -> Table:
    table = Table(title="Fast paths on `full` (s per step; speedup = before / after, paired)")
    for column in ("fast path", "mode", "before s", "after s", "speedup", "max output diff"):
        table.add_column(column, justify="left" if column == "fast path" else "right")
    for result in fast.values():
        for mode in ("train", "infer"):
            if mode in result:
                r = result[mode]
                diff = result.get("max_output_difference")
                table.add_row(
                    result["label"] if mode == "train" or "train" not in result else "",
                    mode,
                    f"{r['before_s']:.3f}",
                    f"{r['after_s']:.3f}",
                    f"x{r['speedup']:.2f}",
                    "" if diff is None or mode == "train" else f"{diff:.1e}",
                )
    return table


def _data_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"Data loading alone ({data['num_workers']} workers, {data['image_size']} px)")
    table.add_column("")
    table.add_column("samples/s", justify="right")
    table.add_row("loader, no image cache", f"{data['no_cache']['samples_per_s']:.0f}")
    table.add_row("loader, image cache (warm)", f"{data['cache_warm']['samples_per_s']:.0f}")
    table.add_row("image cache fill (decode + resize + write)", f"{data['cache_fill_images_per_s']:.0f}")
    if "model_train_samples_per_s" in data:
        table.add_row("model `full` training consumes", f"{data['model_train_samples_per_s']:.1f}")
        table.add_row("loader / model", f"x{data['loader_over_model']:.1f}")
    return table


# ---------------------------------------------------------------------- main
def text_lengths(value: str) -> dict[str, int]:
    """'30,40,100' -> {'text': 30, 'caption': 40, 'explanation': 100}."""
    try:
        lengths = [int(v) for v in value.split(",")]
    except ValueError:
        lengths = []
    if len(lengths) != len(TEXT_KEYS) or min(lengths) < 2:
        raise argparse.ArgumentTypeError(
            f"expected three token lengths >= 2, text,caption,explanation; got {value!r}"
        )
    return dict(zip(TEXT_KEYS, lengths, strict=True))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny", help="conf/model/<name>.yaml (tiny, asap_base)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32", help="of the model section")
    parser.add_argument(
        "--momentum", action=argparse.BooleanOptionalAction, default=None,
        help="momentum encoders + queues on / off in both models (default: the model config's setting)",
    )  # fmt: skip
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    default_fast = [f for f in FAST_PATHS if f != "compile" or torch.cuda.is_available()]
    parser.add_argument(
        "--fast-paths", nargs="*", choices=FAST_PATHS, default=default_fast,
        help="default: all but compile on a CPU (compiling takes minutes there)",
    )  # fmt: skip
    parser.add_argument(
        "--lengths", nargs="*", type=text_lengths, default=[text_lengths("30,40,64")], metavar="T,C,E",
        help="flops section: text,caption,explanation token lengths (every sample that long) to count at, besides "
        "the batch as loaded (default 30,40,64: DGM4-like, explanations at the protocol's 50-word cut)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed training steps per variant (inference: 3x)"
    )
    parser.add_argument("--fast-repeats", type=int, default=3, help="the same for the fast paths")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data-batches", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads on a CPU (default 1: steady on a shared machine; 0: torch's default)",
    )  # fmt: skip
    parser.add_argument(
        "--matmul-size", type=int, default=None,
        help="side of the square matmuls that measure the machine's rate (default 8192 on a GPU, 2048 on a CPU)",
    )  # fmt: skip
    parser.add_argument("--data-root", default=None, help="default: the config's data.root")
    parser.add_argument(
        "--override", nargs="*", default=[], help="more Hydra overrides, e.g. data.num_workers=2"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "logs/bench/bench.json")
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads and args.device.type == "cpu":
        torch.set_num_threads(args.threads)
    device = args.device
    results: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}}
    results["settings"].update(model=args.model, batch_size=args.batch_size, precision=args.precision)
    machine = machine_summary(device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    rates = [matmul_rate(device, dtype, size)]
    console.print(f"dense matmul: {rates[0] / 1e12:.3f} TFLOP/s; loading one batch ...")

    model_rate, full_cfg = None, compose_config(args, "full")
    if {"model", "terms", "fast", "flops"} & set(args.sections):
        batch = first_train_batch(full_cfg, device)
        configs = {"baseline": compose_config(args, "baseline"), "full": full_cfg}
        runners = {name: build_runner(args, name, cfg, batch, device) for name, cfg in configs.items()}
        results["batch"] = batch_summary(batch)
        results["same_encoders"] = same_encoders(runners["baseline"].model, runners["full"].model)
        results["settings"]["momentum_enabled"] = runners["full"].model.momentum is not None
        if "model" in args.sections:
            console.print("model: baseline vs full ...")
            results["model"] = bench_model(runners, args)
            model_rate = results["model"]["full"]["train_samples_per_s"]
        if "terms" in args.sections:
            results["terms"] = bench_terms(runners)
        if "fast" in args.sections and args.fast_paths:
            console.print(f"fast paths: {' '.join(args.fast_paths)} ...")
            results["fast_paths"] = bench_fast_paths(runners["full"], args)
        if "flops" in args.sections:
            console.print("FLOPs per sample at other text lengths ...")
            results["flops"] = bench_flops(runners, args.lengths)
    if "data" in args.sections:
        console.print("data loading ...")
        results["data"] = bench_data(full_cfg, args, model_rate)

    rates.append(matmul_rate(device, dtype, size))  # again at the end: the machine may have changed
    machine.update(
        matmul_tflops=max(rates)
        / 1e12,  # other load only slows a measurement: the higher one is the machine's
        matmul_tflops_runs=[r / 1e12 for r in rates],
        matmul_dtype=str(dtype).removeprefix("torch."),
        matmul_size=size,
        load_average_1min_end=machine_summary(device)["load_average_1min"],
    )
    results["machine"] = machine
    add_flop_fractions(results.get("model", {}), median(rates))
    results["targets"] = check_targets(results)
    print_report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
