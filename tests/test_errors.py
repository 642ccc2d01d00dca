"""asap.errors: one base class for every user-facing error, and the entry points' wrapper that prints it."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from omegaconf.errors import ConfigKeyError

import asap.errors
from asap.errors import UserError
from asap.utils.cli import exit_on_user_error

ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(asap.errors, inspect.isclass)
    if cls.__module__ == "asap.errors" and issubclass(cls, BaseException)
]


def test_the_module_defines_every_user_facing_error() -> None:
    # the classes the package raises for bad input; a new one belongs in asap.errors too
    assert {cls.__name__ for cls in ERROR_CLASSES} == {
        "UserError",
        "ConfigError",
        "DGM4DataError",
        "AuxTextMissingError",
        "AuxCacheError",
        "AuxCacheMismatchError",
        "PredictionFileError",
        "BreakdownError",
        "CheckpointError",
        "ConversionError",
        "PromptError",
        "BackendUnavailable",
        "CacheBusyError",
        "MergeError",
        "NonFiniteLossError",
    }


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_derives_from_the_base(cls: type[Exception]) -> None:
    assert issubclass(cls, UserError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (asap.errors.ConfigError, ValueError),
        (asap.errors.DGM4DataError, ValueError),
        (asap.errors.AuxTextMissingError, ValueError),
        (asap.errors.AuxCacheMismatchError, ValueError),
        (asap.errors.PredictionFileError, ValueError),
        (asap.errors.BreakdownError, ValueError),
        (asap.errors.PromptError, ValueError),
        (asap.errors.CheckpointError, RuntimeError),
    ],
)
def test_errors_keep_their_builtin_base(cls: type[Exception], builtin: type[Exception]) -> None:
    """`except ValueError` around a library call still catches the error it always caught."""
    with pytest.raises(builtin):
        raise cls("x")


def _raising(err: BaseException) -> Callable[[], None]:
    def job() -> None:
        raise err

    return job


USER_ERRORS = [cls("the file /data/x.json is broken") for cls in ERROR_CLASSES] + [
    ConfigKeyError("the file /data/x.json is broken"),  # OmegaConf: a key the config lacks
    FileNotFoundError("the file /data/x.json is broken"),
]


@pytest.mark.parametrize("err", USER_ERRORS, ids=lambda e: type(e).__name__)
def test_the_wrapper_prints_one_line_and_exits_2(
    err: BaseException, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASAP_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(_raising(err))()
    out = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 2
    assert out.startswith(f"error: {type(err).__name__}: ") and "the file /data/x.json is broken" in out


def test_the_wrapper_passes_results_and_other_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASAP_TRACEBACK", raising=False)
    assert exit_on_user_error(lambda x: x + 1)(1) == 2
    with pytest.raises(KeyError):  # a bug, not the user's: its traceback is shown
        exit_on_user_error(_raising(KeyError("internal")))()


def test_asap_traceback_re_raises_the_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASAP_TRACEBACK", "1")
    with pytest.raises(asap.errors.DGM4DataError, match="broken"):
        exit_on_user_error(_raising(asap.errors.DGM4DataError("broken")))()
