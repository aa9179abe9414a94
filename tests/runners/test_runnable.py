"""A call past its time limit is told spinning from stuck by the runner's thread states too:
on a crowded machine a niced spinner gets a few per cent of a core, but stays runnable."""

from __future__ import annotations

import subprocess
import sys
import time

from pointsman.runners.supervisor import is_runnable


def test_a_spinning_process_is_runnable_and_a_sleeping_one_is_not() -> None:
    spinner = started("while True: pass")
    sleeper = started("import time; time.sleep(60)")
    try:
        assert any(is_runnable(spinner.pid) for _ in range(50))
        settled = time.monotonic() + 10  # past the few instructions from its print to its sleep
        while is_runnable(sleeper.pid) and time.monotonic() < settled:
            time.sleep(0.01)
        assert not any(is_runnable(sleeper.pid) for _ in range(50))
    finally:
        for process in (spinner, sleeper):
            process.kill()
            process.communicate()  # reaped, its pipe closed
    assert not is_runnable(spinner.pid)  # gone: not runnable
    assert not is_runnable(None)


def started(code: str) -> subprocess.Popen[bytes]:
    """A Python process running `code`, past its start-up."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"print('up', flush=True)\n{code}"], stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    return process
