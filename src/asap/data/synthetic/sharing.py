"""Several runs on one synthetic data root: generation one at a time, and no set replaced under a run reading it.

Two advisory locks in the root, both released by the operating system when a process ends (nothing goes stale):

- `.synthetic.lock` (filelock): held while a process checks, generates or installs the set, so two runs that ask
  for the same new set generate it once (the second finds it made) and no one sees it half installed;
- `.synthetic.readers` (`flock`, shared): held by every process that reads the set (the datamodule takes it), for
  the life of the process. Replacing a set needs this lock exclusively: when another process holds it, the run
  that asks for other parameters is refused with an error that names the folder, and the reading run goes on.

A run refused here gets its own root (`data.root=...`) instead of a set that changes under the other: the root then
always holds what its manifest says, and a sweep over `data.synthetic.*` names one root per parameter set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from filelock import FileLock

from asap.errors import DGM4DataError

log = logging.getLogger(__name__)

MUTEX = ".synthetic.lock"
READERS = ".synthetic.readers"
# root -> (parameters, the open readers file holding the shared lock) for this process
_READING: dict[Path, tuple[dict[str, Any], IO[str]]] = {}


@contextlib.contextmanager
def one_at_a_time(root: Path) -> Iterator[None]:
    """Hold the root's generation lock (waits for a process generating there)."""
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / MUTEX)
    with lock:
        yield


def refuse_if_read_by_others(root: Path, target: Path, old: Any, new: dict[str, Any]) -> None:
    """Before replacing `target`: this process stops reading it; another process reading it is an error."""
    stop_reading(root)
    fcntl = _fcntl()
    if fcntl is None:
        return
    with (root / READERS).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DGM4DataError(
                f"{target} holds a synthetic set made with {old} that another run is reading; this run asks for "
                f"{new}. It is not replaced under that run: give this run its own root (e.g. "
                f"data.root={root}_{new.get('seed', 'other')}), or start it when the other run has ended"
            ) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def start_reading(root: Path, params: dict[str, Any]) -> None:
    """Mark the root's set as read by this process (a shared lock, until the process ends)."""
    if root in _READING and _READING[root][0] == params:
        return
    stop_reading(root)
    fcntl = _fcntl()
    if fcntl is None:
        return
    handle = (root / READERS).open("a")
    fcntl.flock(handle, fcntl.LOCK_SH)
    _READING[root] = (dict(params), handle)


def stop_reading(root: Path) -> None:
    held = _READING.pop(root, None)
    if held is not None:
        held[1].close()  # closing releases the lock


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks (one run per root)
        return None
    return fcntl
