"""Helpers the test files share (pytest puts tests/ on sys.path: `from helpers import ...`).

No test file imports another test file; what two of them need lives here.
- a micro model config and the conf/ groups as dicts: `conf`, `micro_model`, `MICRO_MODEL`, `CONF`, `ABLATIONS`
- a batch obeying docs/contracts.md: `make_batch` (`KINDS`, `CLS_ID`, `PAD_ID`)
- a seeded micro ASAPModel: `build`
- a DGM4DataModule on a hand-written root and its aux-text caches: `_dm`, `_write_cache`
- the hand-worked box cases of the protocol's IoU: `BOX_CASES`
- an entry point of src/ as a module, to call its `main` in-process: `load_script`
- an entry point of src/ as its own process, without paying the imports each time: `run_script`
- fault injection in a training run, as Hydra callbacks (`+callbacks.x._target_=helpers.SignalDuringStep`):
  `InterruptAfterEpoch` (exit status `KILLED`), `SignalDuringStep`, `SignalDuringValidation`
"""

from __future__ import annotations

import atexit
import copy
import importlib.util
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import weakref
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf

from asap.conf import SCHEMAS
from asap.data import DGM4DataModule
from asap.data.aux_cache import AuxTextWriter
from asap.data.patches import patch_labels
from asap.models import ASAPModel
from asap.models.config import ASAPConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))
# fake_cls -> [FS, FA, TS, TA]
KINDS = {
    "orig": (0, 0, 0, 0),
    "face_swap": (1, 0, 0, 0),
    "text_attribute": (0, 0, 0, 1),
    "face_attribute&text_swap": (0, 1, 1, 0),
    "face_attribute": (0, 1, 0, 0),
    "text_swap": (0, 0, 1, 0),
}
CLS_ID, PAD_ID = 1, 0

# a micro model: 32x32 images, 16 patches, width 64, 1 text + 2 fusion layers, a 500-word vocabulary
MICRO_MODEL: dict[str, Any] = {
    "image_size": 32,
    "patch_size": 8,
    "tokenizer": "unused-in-these-tests",
    "max_text_len": 16,
    "image_encoder": {"name": "vit_base_patch16_224", "embed_dim": 64, "depth": 2, "num_heads": 2},
    "text_encoder": {
        "bert": {
            "vocab_size": 500,
            "hidden_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 64,
        },
        "text_layers": 1,
    },
    "embed_dim": 32,
}


def conf(group: str, name: str) -> dict[str, Any]:
    """conf/<group>/<name>.yaml on its schema (asap.conf.SCHEMAS) as a plain dict, interpolations unresolved."""
    values = OmegaConf.load(CONF / group / f"{name}.yaml")
    values.pop("defaults", None)
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(SCHEMAS[group]), values))


def micro_model(**overrides: Any) -> dict[str, Any]:
    """A copy of MICRO_MODEL with top-level keys replaced."""
    cfg = copy.deepcopy(MICRO_MODEL)
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def make_batch(
    B: int = 6,
    L: int = 10,
    image_size: int = 32,
    patch_size: int = 8,
    vocab: int = 500,
    aux: tuple[str, ...] = ("caption", "explanation"),
    aux_len: dict[str, int] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A contract batch: real and manipulated samples, padded texts, consistent labels, boxes and patch labels."""
    g = torch.Generator().manual_seed(seed)
    kinds = [list(KINDS)[i % len(KINDS)] for i in range(B)]
    multilabel = torch.tensor([KINDS[k] for k in kinds], dtype=torch.float)  # (B, 4)
    lengths = [L - (i % 3) for i in range(B)]  # right padding on some rows
    input_ids = torch.full((B, L), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros(B, L, dtype=torch.long)
    token_labels = torch.full((B, L - 1), -100, dtype=torch.long)
    boxes, has_box, patches = torch.zeros(B, 4), torch.zeros(B, dtype=torch.bool), []
    for i, n in enumerate(lengths):
        input_ids[i, 0], input_ids[i, 1:n] = CLS_ID, torch.randint(5, vocab, (n - 1,), generator=g)
        attention_mask[i, :n] = 1
        token_labels[i, : n - 1] = 0
        if multilabel[i, 2:].any():  # text manipulated: a few word-pieces
            token_labels[i, 1:3] = 1
        box = None
        if multilabel[i, :2].any():  # face manipulated: a box in pixels of the transformed image
            x, y = (torch.rand(2, generator=g) * image_size / 2).tolist()
            w = h = image_size / 3
            box = (x, y, w, h)
            boxes[i] = torch.tensor(
                [(x + w / 2) / image_size, (y + h / 2) / image_size, w / image_size, h / image_size]
            )
            has_box[i] = True
        patches.append(patch_labels(box, image_size, patch_size))
    batch: dict[str, Any] = {
        "image": torch.randn(B, 3, image_size, image_size, generator=g),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_labels": token_labels,
        "binary_label": multilabel.any(dim=1).long(),
        "multilabel": multilabel,
        "box": boxes,
        "has_box": has_box,
        "patch_labels": torch.stack(patches),
        "index": torch.arange(B),
        "ids": [str(i) for i in range(B)],
        "image_path": [f"DGM4/origin/x/{i}.jpg" for i in range(B)],
        "text": ["a caption"] * B,
        "orig_size": torch.tensor([[64, 48]] * B),
    }
    for kind in aux:
        n = (aux_len or {}).get(kind, {"caption": L + 3, "explanation": L + 6}[kind])
        ids = torch.randint(5, vocab, (B, n), generator=g)
        ids[:, 0] = CLS_ID
        mask = torch.ones(B, n, dtype=torch.long)
        mask[0, n // 2 :], ids[0, n // 2 :] = 0, PAD_ID  # one padded row
        batch[f"{kind}_ids"], batch[f"{kind}_mask"] = ids, mask
    return batch


def build(ablation: str | dict = "full", loss: dict | None = None, seed: int = 0, **model: Any) -> ASAPModel:
    """A micro ASAPModel under an ablation preset (name or dict), seeded before its init."""
    torch.manual_seed(seed)
    abl = conf("ablation", ablation) if isinstance(ablation, str) else ablation
    cfg = ASAPConfig.from_plain(micro_model(**model), loss or conf("loss", "default"), abl, {})
    return ASAPModel(cfg.model, cfg.loss, cfg.ablation)


def _dm(root: Path, tokenizer_dir: str, **kw) -> DGM4DataModule:
    """A DGM4DataModule on `root` (64x64 images, 8x8 patches, batch 16, no workers); `kw` overrides."""
    args = dict(
        root=root,
        tokenizer=tokenizer_dir,
        image_size=64,
        patch_size=8,
        batch_size=16,
        num_workers=0,
        drop_last=False,
    )
    return DGM4DataModule(**(args | kw))


def _write_cache(root: Path, kind: str, rows: list[tuple[str, str, str]]) -> None:
    """The aux-text cache of `kind` under `root` with (image, text, output) rows."""
    with AuxTextWriter(root / f"DGM4/aux_text/{kind}.jsonl", model="test", prompt_hash="h") as w:
        for image, text, output in rows:
            w.write_ok(image, text, output)


# ---------------------------------------------------------------------------------------------- boxes
BOX_CASES = [  # (pred cx cy w h, target cx cy w h, IoU with the rule, plain IoU)
    ([0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], 1.0, 1.0),  # identical
    ([0.5, 0.5, 0.2, 0.2], [0.6, 0.5, 0.2, 0.2], 1 / 3, 1 / 3),  # inter .02, union .06
    ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], 1.0, 0.0),  # no box, predicted exactly zero
    ([4e-5, 4e-5, 2e-5, 2e-5], [0.0, 0.0, 0.0, 0.0], 1.0, 0.0),  # all corners < 1e-4
    ([2e-4, 4e-5, 2e-5, 2e-5], [0.0, 0.0, 0.0, 0.0], 0.0, 0.0),  # x2 above 1e-4: plain IoU 0
    ([0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0], 0.0, 0.0),  # no box, a box predicted
    ([0.0, 0.0, 0.0, 0.0], [0.1, 0.5, 0.2, 0.2], 1.0, 0.0),  # real box on the left edge (x1 = 0): the quirk
    ([0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.2, 0.2], 0.0, 0.0),  # real box, predicted zero
    ([0.5, 0.375, 0.5, 0.25], [0.5, 0.5, 0.5, 0.5], 0.5, 0.5),  # exactly 0.5 in float32
    ([0.5, 0.4375, 0.5, 0.375], [0.5, 0.5, 0.5, 0.5], 0.75, 0.75),  # exactly 0.75 in float32
]


# ---------------------------------------------------------------------------------------------- fault injection
KILLED = 3  # exit status of the simulated kill


class InterruptAfterEpoch(L.Callback):
    """A kill: the process ends without any clean-up at the second batch of the epoch after `epoch`."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch + 1 and batch_idx == 1:
            os._exit(KILLED)


class SignalDuringStep(L.Callback):
    """Fault injection: the process sends itself `signum` as the training batch `batch` of `epoch` starts."""

    def __init__(self, epoch: int, batch: int, signum: str) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signal.Signals[signum]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


class SignalDuringValidation(L.Callback):
    """Fault injection: the process sends itself `signum` as the validation of `epoch` starts its first batch."""

    def __init__(self, epoch: int, signum: str) -> None:
        self.epoch, self.signum = epoch, signal.Signals[signum]

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 0 and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)


def load_script(name: str) -> Any:
    """An entry point of src/ (e.g. "score.py") loaded as a module, to drive its `main` in-process."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py") + "_script", ROOT / "src" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- processes
# what the entry points import: a fork server imports it once, each run is a fork of it
SCRIPT_PRELOAD = [
    "asap.conf",
    "asap.pipeline.train",
    "asap.pipeline.evaluate",
    "asap.pipeline.predict",
    "hydra",
    "lightning",
    "wandb",
]
_FORK_SERVER = multiprocessing.get_context("forkserver")
_FORK_SERVER.set_forkserver_preload(SCRIPT_PRELOAD)


def run_script(
    script: str | Path,
    *args: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """`python src/<script> *args` in a process of its own, as `subprocess.run(..., capture_output=True)`.

    The process is a fork of a server that imported torch, Lightning, transformers and wandb once (~8 s a run
    here otherwise); it runs the script as `__main__` with its own argv, environment, working folder, stdout and
    stderr, and ends as an interpreter does (atexit handlers, exit status, `os._exit`, death by a signal). A
    process it starts (a DDP rank) is a plain `python src/<script>`.
    """
    path = Path(script) if Path(script).is_absolute() else ROOT / "src" / script
    env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        child = _FORK_SERVER.Process(
            target=_run_as_main, args=(str(path), list(args), str(cwd), env, str(out), str(err))
        )
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired([str(path), *args], timeout, out.read_text(), err.read_text())
        return subprocess.CompletedProcess(
            [sys.executable, str(path), *args], child.exitcode, out.read_text(), err.read_text()
        )


def _run_as_main(path: str, argv: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """In the forked process: `python path *argv` from here on, with stdout and stderr to the files."""
    _forget_the_servers_exit_handlers()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, file in ((1, out), (2, err)):
        target = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's own stream)
    sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
    sys.argv = [path, *argv]
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [str(Path(path).parent), *extra]  # as the interpreter sets them up
    code: int = 0
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 (what the interpreter does with an uncaught exception)
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  (the interpreter's exit: non-daemon threads, atexit)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _forget_the_servers_exit_handlers() -> None:
    """The server's atexit handlers and finalizers are not this process's (e.g. wandb's media folder, shared)."""
    atexit._clear()
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        finalizer.atexit = False
    weakref.finalize._registered_with_atexit = False  # type: ignore[attr-defined]  (the child's own register)
