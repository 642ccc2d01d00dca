"""The test helpers that other tests trust: `run_script`, the forked runner of the entry-point tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import run_script


@pytest.mark.parametrize(
    "body, status, stderr",
    [
        ("import sys; print('out'); print('err', file=sys.stderr)", 0, "err"),
        ("raise SystemExit('bad input')", 1, "bad input"),
        ("raise ValueError('boom')", 1, "ValueError: boom"),
        ("import os; os._exit(3)", 3, ""),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -15, ""),
    ],
)
def test_run_script_ends_as_the_interpreter_would(
    tmp_path: Path, body: str, status: int, stderr: str
) -> None:
    """The forked runner the entry-point tests use: exit status, streams, cwd and environment as a subprocess's."""
    script = tmp_path / "job.py"
    script.write_text(f"import os, pathlib\npathlib.Path('cwd.txt').write_text(os.environ['MARK'])\n{body}\n")
    run = run_script(script, cwd=tmp_path, env={**os.environ, "MARK": "here"})
    assert run.returncode == status and stderr in run.stderr
    assert run.stdout == ("out\n" if status == 0 else "")
    assert (tmp_path / "cwd.txt").read_text() == "here"
