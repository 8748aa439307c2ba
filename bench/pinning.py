"""Child processes pinned to a core: on this 2-core machine the server under test gets core
0 and everything that loads or feeds it (this script, wrk, the fake model, py-spy) core 1,
so the load generator never takes the server's CPU."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_CORE, LOAD_CORE = 0, 1
STOP_GRACE = 20.0  # seconds a child gets to stop after SIGTERM


@contextmanager
def pinned(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    core: int | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, on `core` if given (taskset execs, so the pid is the program's), its
    output to `log` if given."""
    prefix = ["taskset", "-c", str(core)] if core is not None else []
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        proc = subprocess.Popen([*prefix, *args], cwd=cwd, env=env, stdout=out, stderr=out)
        stack.callback(_stop, proc)
        yield proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
