"""Speed and memory of ASAP's parts: training and inference samples/s and peak memory, per ablation preset.

All presets share the same encoders, so the differences are the cost of LMA (aux texts, IED), MGCA (explicit
attention maps) and PMM. Inference runs none of them: `full` must cost what `baseline` costs.

    python benchmarks/bench_model.py                                  # tiny model, CPU, baseline vs full
    python benchmarks/bench_model.py --model asap_base --batch-size 32 --steps 20 --precision bf16   (GPU)
    python benchmarks/bench_model.py --ablations baseline lma lma_mgca full --json logs/bench/model.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from rich.table import Table

from asap.models import ASAPModel
from asap.models.config import ASAPConfig
from asap.models.optim import build_optimizer

CONF = Path(__file__).resolve().parents[1] / "conf"
COLUMNS = ("ablation", "params (M)", "train samples/s", "infer samples/s", "train peak MiB", "infer peak MiB")


def load_config(model: str, ablation: str) -> ASAPConfig:
    """conf/model/<model>.yaml, conf/loss/default.yaml, conf/ablation/<ablation>.yaml (tokenizer unused here)."""
    read = lambda group, name: yaml.safe_load((CONF / group / f"{name}.yaml").read_text())  # noqa: E731
    model_cfg = read("model", model) | {"tokenizer": "unused"}
    return ASAPConfig.from_plain(model_cfg, read("loss", "default"), read("ablation", ablation), {})


def random_batch(
    cfg: ASAPConfig, B: int, text_len: int, aux_len: int, device: torch.device
) -> dict[str, Any]:
    """A contract batch of random content: half real, half manipulated with a box and two fake tokens."""
    m = cfg.model
    vocab, N = int(m.text_encoder.bert.get("vocab_size", 30522)), m.num_patches
    fake = torch.arange(B) % 2 == 1
    token_labels = torch.zeros(B, text_len - 1, dtype=torch.long)
    token_labels[fake, :2] = 1
    patch_labels = torch.full((B, N), -1, dtype=torch.long)
    patch_labels[fake, :4], patch_labels[fake, 4:8] = 1, 0
    batch = {
        "image": torch.randn(B, 3, m.image_size, m.image_size),
        "input_ids": torch.randint(1000, vocab, (B, text_len)),
        "attention_mask": torch.ones(B, text_len, dtype=torch.long),
        "token_labels": token_labels,
        "binary_label": fake.long(),
        "multilabel": torch.stack([fake, fake, torch.zeros_like(fake), fake], dim=1).float(),
        "box": fake[:, None] * torch.tensor([0.5, 0.5, 0.2, 0.2]),
        "has_box": fake,
        "patch_labels": patch_labels,
    }
    for kind in ("caption", "explanation"):
        batch[f"{kind}_ids"] = torch.randint(1000, vocab, (B, aux_len))
        batch[f"{kind}_mask"] = torch.ones(B, aux_len, dtype=torch.long)
    return {k: v.to(device) for k, v in batch.items()}


class PeakMemory:
    """Peak CUDA memory allocated, or the process's peak RSS (reset per phase where Linux allows it), in MiB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
            except OSError:
                pass

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of `fn` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps


def bench(ablation: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    cfg = load_config(args.model, ablation)
    torch.manual_seed(0)
    model = ASAPModel(cfg.model, cfg.loss, cfg.ablation, load_weights=False).to(device)
    optimizer = build_optimizer(model, lr=1e-4)
    batch = random_batch(cfg, args.batch_size, args.text_len, args.aux_len, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    memory = PeakMemory(device)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            losses = model(batch).losses
        sum(losses.values()).backward()
        optimizer.step()

    @torch.no_grad()
    def infer_step() -> None:
        with autocast:
            model(batch)

    model.train()
    memory.reset()
    train_s = timed(train_step, args.steps, args.warmup, device)
    train_mem = memory.peak_mib()
    model.eval()
    memory.reset()
    infer_s = timed(infer_step, args.steps, args.warmup, device)
    infer_mem = memory.peak_mib()
    return {
        "ablation": ablation,
        "params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
        "train_samples_per_s": args.batch_size / train_s,
        "infer_samples_per_s": args.batch_size / infer_s,
        "train_peak_mib": train_mem,
        "infer_peak_mib": infer_mem,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny", "asap_base"], default="tiny")
    parser.add_argument("--ablations", nargs="+", default=["baseline", "full"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--text-len", type=int, default=40, help="text tokens incl. [CLS]")
    parser.add_argument("--aux-len", type=int, default=64, help="caption / explanation tokens")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--json", type=Path, default=Path("logs/bench/bench_model.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    rows = [bench(ablation, args, device) for ablation in args.ablations]
    reference = rows[0]
    table = Table(title=f"ASAP model ({args.model}, batch {args.batch_size}, {args.precision}, {device})")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "ablation" else "right")
    for row in rows:
        ratio = reference["infer_samples_per_s"] / row["infer_samples_per_s"]
        table.add_row(
            row["ablation"],
            f"{row['params_m']:.2f}",
            f"{row['train_samples_per_s']:.1f} (x{reference['train_samples_per_s'] / row['train_samples_per_s']:.2f})",
            f"{row['infer_samples_per_s']:.1f} (x{ratio:.2f})",
            f"{row['train_peak_mib']:.0f}",
            f"{row['infer_peak_mib']:.0f}",
        )
    console = Console()
    console.print(table)
    console.print(f"(xN: time per sample relative to `{reference['ablation']}`)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) for k, v in vars(args).items()}
    args.json.write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    console.print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
