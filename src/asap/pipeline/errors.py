"""User-facing errors: bad data, bad config, bad files get one clear message, not a stack trace of internals."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf.errors import OmegaConfBaseException

from asap.utils.console import console

log = logging.getLogger(__name__)
T = TypeVar("T")


class UserError(Exception):
    """An error the user can fix (a path, a file, a config value); printed without a traceback."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Errors raised for bad input by the package's modules (imported lazily: they may not all exist yet)."""
    types: list[type[BaseException]] = [UserError, OmegaConfBaseException, FileNotFoundError]
    for module, name in (
        ("asap.data.records", "DGM4DataError"),
        ("asap.data.aux_cache", "AuxCacheError"),
        ("asap.metrics.predictions", "PredictionFileError"),
        ("asap.models.config", "ConfigError"),
        ("asap.models.checkpoint", "CheckpointError"),
        ("asap.auxtext.prompts", "PromptError"),
    ):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            continue
    return tuple(types)


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Print a user error in one red block and exit with status 2 (set ASAP_TRACEBACK=1 for the traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        import os

        try:
            return fn(*args, **kwargs)
        except user_error_types() as err:
            if os.environ.get("ASAP_TRACEBACK"):
                raise
            console.print(f"[bold red]error:[/] {type(err).__name__}: {err}")
            sys.exit(2)

    return wrapper
