"""An exclusive advisory lock per cache file: two writers would duplicate work and lines."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from asap.errors import CacheBusyError


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold a non-blocking ``flock`` on ``path`` (created if absent); released on exit and when the process dies."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise CacheBusyError(
                f"another process is writing {path}; wait for it, or use another shard"
            ) from err
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
