"""What every entry point in src/ shares: a user error as one red line and exit status 2."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf.errors import OmegaConfBaseException

from asap.errors import UserError
from asap.utils.console import console

T = TypeVar("T")

# a bad config (OmegaConf: a missing key, a value of the wrong type) and a missing file are the user's to fix too
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, OmegaConfBaseException, FileNotFoundError)


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Print a user error in one red block and exit with status 2 (set ASAP_TRACEBACK=1 for the traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            if os.environ.get("ASAP_TRACEBACK"):
                raise
            console.print(f"[bold red]error:[/] {type(err).__name__}: {err}")
            sys.exit(2)

    return wrapper
