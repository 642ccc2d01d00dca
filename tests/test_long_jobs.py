"""Long jobs in process: the resume point of a run folder, and a non-finite loss stopping (or skipping) a step.

The signal tests (a real SIGTERM / SIGUSR1 to a running training, then the same command again) run in processes
of their own in tests/test_train.py beside the kill-and-resume test whose uninterrupted run they compare with; the fault
injection callbacks live in tests/helpers.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import asap.utils.resolvers  # noqa: F401  (the ${...} resolvers of conf/)
from asap.errors import NonFiniteLossError, UserError
from asap.pipeline.resume import check_same_run, find_resume_point

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = {"model": {"width": 8}, "loss": {"alpha": 0.5}, "ablation": {}, "optim": {"lr": 1e-4}}


# ---------------------------------------------------------------------------------------------------- resume point


def _training_checkpoint(path: Path, epoch: int, step: int, mtime: int) -> Path:
    state = {"state_dict": {"w": torch.ones(2)}, "optimizer_states": [], "loops": {}, "epoch": epoch}
    torch.save(state | {"global_step": step, "hyper_parameters": HPARAMS}, path)
    os.utime(path, ns=(mtime, mtime))
    return path


def test_the_newest_intact_checkpoint_is_the_resume_point_and_a_torn_one_is_named(tmp_path: Path) -> None:
    assert find_resume_point(tmp_path / "absent") is None  # a fresh folder starts fresh
    _training_checkpoint(tmp_path / "epoch_000.ckpt", 0, 2, mtime=1_000_000_000)
    last = _training_checkpoint(tmp_path / "last.ckpt", 1, 4, mtime=2_000_000_000)
    point = find_resume_point(tmp_path)
    assert point is not None and point.path == last and (point.epoch, point.global_step) == (1, 4)
    assert point.unreadable == ()
    torn = _training_checkpoint(tmp_path / "interrupted.ckpt", 2, 5, mtime=3_000_000_000)
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])  # a write cut short
    point = find_resume_point(tmp_path)
    assert point is not None and point.path == last
    ((path, reason),) = point.unreadable
    assert path == torn and str(torn) in reason and "corrupt or truncated" in reason


def test_a_folder_of_unreadable_checkpoints_or_of_another_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="no checkpoint in .* can be read"):
        find_resume_point(tmp_path)
    _training_checkpoint(tmp_path / "epoch_000.ckpt", 0, 2, mtime=1_000_000_000)
    point = find_resume_point(tmp_path)
    assert point is not None
    check_same_run(point, HPARAMS, tmp_path)
    with pytest.raises(UserError, match=r"another configuration \(loss.alpha: 0.5 -> 1.0\)"):
        check_same_run(point, HPARAMS | {"loss": {"alpha": 1.0}}, tmp_path)


def test_a_checkpoint_write_that_fails_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asap.models import checkpoint_io
    from asap.models.checkpoint_io import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    whole = path.read_bytes()

    def killed_mid_write(obj: Any, handle: Any) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the job ends here

    monkeypatch.setattr(checkpoint_io.torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, path)
    assert path.read_bytes() == whole and [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    monkeypatch.undo()
    io.save_checkpoint({"global_step": 3}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 3}


# ---------------------------------------------------------------------------------------------------- train loader


class _NoisyItems(torch.utils.data.Dataset):
    """Items with a random part drawn in the loading process (like the training augmentation)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([float(index)]) + torch.rand(1)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_the_train_loader_continues_an_interrupted_epoch_with_the_same_batches(num_workers: int) -> None:
    """Between batches the model draws from the same generator (dropout): a resumed epoch sees the same data."""
    from asap.data.resumable_loader import ResumableDataLoader

    def loader() -> ResumableDataLoader:
        return ResumableDataLoader(_NoisyItems(), batch_size=3, shuffle=True, num_workers=num_workers)

    def train(batches: Any, steps: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        seen = []
        for batch in batches:
            seen.append((batch, torch.rand(1)))  # the step's own draw
            if len(seen) == steps:
                break
        return seen

    torch.manual_seed(0)
    uninterrupted = train(loader())  # 4 batches
    torch.manual_seed(0)
    first = loader()
    done = train(first, steps=2)
    state = first.position.epoch_state()
    assert state["batches_served"] == 2
    second = loader()
    second.position.resume(state)  # the checkpoint's generator state is the current one
    rest = train(second)
    assert len(done + rest) == len(uninterrupted) == 4
    for (batch, draw), (same_batch, same_draw) in zip(done + rest, uninterrupted, strict=True):
        assert torch.equal(batch, same_batch) and torch.equal(draw, same_draw)
    assert second.position.epoch_state()["batches_served"] == 4


# ---------------------------------------------------------------------------------------------------- non-finite


class PoisonLossTerm(L.Callback):
    """Fault injection: the model's first loss term becomes NaN at the given (epoch, batch) pairs.

    Records the weights before each poisoned step and the record indices of its batch (class attributes: the test
    reads them after the run).
    """

    seen: list[dict[str, Any]] = []

    def __init__(self, at: list[list[int]]) -> None:
        self.at = {tuple(p) for p in at}
        PoisonLossTerm.seen = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if PoisonLossTerm.seen and "after" not in PoisonLossTerm.seen[-1]:
            PoisonLossTerm.seen[-1]["after"] = _weights(pl_module)  # the step after a skipped one
        model = pl_module.model
        model.__dict__.pop("forward", None)  # the model's own forward again
        if (trainer.current_epoch, batch_idx) not in self.at:
            return
        original = model.forward

        def poisoned(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            name = next(iter(out.losses))
            out.losses[name] = out.losses[name] * float("nan")
            PoisonLossTerm.seen[-1]["term"] = name
            return out

        model.forward = poisoned
        PoisonLossTerm.seen.append(
            {"step": trainer.global_step, "indices": batch["index"].tolist(), "before": _weights(pl_module)}
        )


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained parameters (the momentum encoder follows them in the forward pass, skipped step or not)."""
    return {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _train_in_process(tmp_path: Path, data_dir: Path, *overrides: str) -> Path:
    """`train(cfg)` in this process on a tiny synthetic set (2 train batches per epoch); returns the run folder."""
    from hydra import compose, initialize_config_dir

    from asap.pipeline.train import train

    run_dir = tmp_path / "run"
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.log_dir={tmp_path / 'logs'}",
                f"paths.data_dir={data_dir}",
                f"paths.output_dir={run_dir}",
                "paths.work_dir=.",
                "data.synthetic.num_train=16",
                "data.synthetic.num_val=8",
                "data.synthetic.num_test=8",
                "data.batch_size=8",
                "data.eval_batch_size=8",
                "data.num_workers=0",
                "logger=none",
                "callbacks.rich_progress_bar=null",
                "callbacks.model_summary=null",
                "trainer.max_epochs=2",
                *overrides,
            ],
        )
    train(cfg)
    return run_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


POISON = "+callbacks.poison._target_=test_long_jobs.PoisonLossTerm"


def test_a_non_finite_loss_stops_at_once_naming_step_terms_and_records(
    tmp_path: Path, data_dir: Path
) -> None:
    with pytest.raises(NonFiniteLossError) as stopped:
        _train_in_process(tmp_path, data_dir, POISON, "+callbacks.poison.at=[[1,1]]")
    (poisoned,) = PoisonLossTerm.seen
    message = str(stopped.value)
    assert poisoned["step"] == 3 and "global step 3 (epoch 1, batch 1)" in message
    assert f"non-finite term(s): {poisoned['term']}=nan" in message
    assert f"record indices of the batch: {poisoned['indices']}" in message
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"the last checkpoint is {last}" in message
    # the last good checkpoint is whole and from before the bad step; nothing else was written
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2 and checkpoint["epoch"] == 0
    assert not (tmp_path / "run" / "checkpoints" / "interrupted.ckpt").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_skipped_non_finite_steps_leave_the_weights_alone_up_to_the_limit(
    tmp_path: Path, data_dir: Path
) -> None:
    overrides = [
        "non_finite_loss.action=skip",
        "non_finite_loss.max_skipped=1",
        POISON,
        "+callbacks.poison.at=[[0,1],[1,1]]",
    ]
    with pytest.raises(NonFiniteLossError, match="2 skipped steps, more than non_finite_loss.max_skipped=1"):
        _train_in_process(tmp_path, data_dir, *overrides)
    skipped, stopped = PoisonLossTerm.seen
    assert _same_weights(
        skipped["before"], skipped["after"]
    )  # the optimiser did not step on the skipped batch
    assert stopped["step"] == 3  # the skipped step still counts as a step
    checkpoint = torch.load(
        tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    assert checkpoint["callbacks"]["NonFiniteLossGuard"] == {"skipped": 1}  # the count survives a resume


# ---------------------------------------------------------------------------------------------------- SLURM


def _submitit_signal() -> signal.Signals:
    from submitit.core.job_environment import JobEnvironment

    return signal.Signals[f"SIG{JobEnvironment.USR_SIG}"]


def test_slurm_launcher_asks_for_the_signal_the_training_saves_on() -> None:
    from hydra import compose, initialize_config_dir

    from asap.callbacks.stop_on_signal import STOP_SIGNALS

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (
        launcher.signal_delay_s >= 300 and launcher.max_num_timeout > 0
    )  # submitit's default 0 never requeues
    assert _submitit_signal() in STOP_SIGNALS and signal.SIGTERM in STOP_SIGNALS


def test_after_the_checkpoint_the_signal_goes_on_to_the_jobs_own_handler(
    tmp_path: Path, data_dir: Path
) -> None:
    """On SLURM that handler is submitit's (requeue the task, then exit); here a stand-in records the call."""
    usr_sig = _submitit_signal()
    interrupted = tmp_path / "run" / "checkpoints" / "interrupted.ckpt"
    calls: list[tuple[int, bool]] = []

    def job_handler(signum: int, frame: Any) -> None:
        calls.append((signum, interrupted.exists()))

    before = signal.signal(usr_sig, job_handler)
    try:
        with pytest.raises(SystemExit) as stopped:
            _train_in_process(
                tmp_path,
                data_dir,
                "+callbacks.sig._target_=helpers.SignalDuringStep",
                "+callbacks.sig.epoch=0",
                "+callbacks.sig.batch=0",
                f"+callbacks.sig.signum={usr_sig.name}",
            )
        assert signal.getsignal(usr_sig) is job_handler  # put back when training stopped
    finally:
        signal.signal(usr_sig, before)
    assert stopped.value.code == 128 + usr_sig
    assert calls == [(usr_sig, True)]  # once, after the checkpoint was written
    checkpoint = torch.load(interrupted, map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 1)


def test_a_signal_in_the_last_validation_stops_before_the_test(
    tmp_path: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The epoch end is saved; the test is left to the same command, which resumes at the end of training."""
    with (
        caplog.at_level("WARNING", logger="asap.callbacks.stop_on_signal"),
        pytest.raises(SystemExit) as stopped,
    ):
        _train_in_process(
            tmp_path,
            data_dir,
            "+callbacks.sig._target_=helpers.SignalDuringValidation",
            "+callbacks.sig.epoch=1",
            "+callbacks.sig.signum=SIGUSR1",
        )
    assert stopped.value.code == 128 + signal.SIGUSR1
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert (
        f"SIGUSR1 received: training stopped at epoch 2, global step 4, with its state in {last}"
        in caplog.text
    )
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 4)
    assert not (tmp_path / "run" / "metrics.json").exists()
