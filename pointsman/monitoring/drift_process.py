"""Drift runs, for a serving process, in a process of its own.

A drift run reads up to `drift_max_rows` logged requests and computes each feature's PSI:
tens of milliseconds at a time in code that holds the GIL. In a thread of a serving process
that was felt by its event loop (a /healthz probe stalled 60-90 ms while models
misbehaved next door). The serving process keeps the schedule and the lease; the child
opens the project once, answers "run" with the reports, and ends when its pipe closes (the
parent stopped or died). A child that died is started again on the next run.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pointsman.monitoring.monitor import DriftReport
    from pointsman.settings import Settings

log = logging.getLogger("pointsman.drift")

NICE = 10
STOP_WAIT_S = 5.0  # how long close waits for the child to end before killing it


class DriftProcess:
    """A child process that runs every routed version's drift report when asked."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # one run at a time; close waits for it
        self._child: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._closed = False

    def run(self) -> list[DriftReport]:
        """Every routed version's report, computed in the child (started if need be)."""
        with self._lock:
            if self._closed:
                return []
            conn = self._start()
            try:
                conn.send("run")
                status, answer = conn.recv()
            except (EOFError, OSError) as exc:
                code = self._reap()
                if self._closed:  # cut short by close
                    return []
                raise RuntimeError(f"the drift process ended (exit code {code})") from exc
            if status != "ok":
                raise RuntimeError(f"the drift run failed in its process: {answer}")
            return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the child: an idle one ends when its pipe closes; a run in flight is cut
        short (it only reads the log and adds results in one transaction)."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._reap()
            finally:
                self._lock.release()
            return
        child = self._child
        if child is not None:
            child.kill()
        with self._lock:
            self._reap()

    def _start(self) -> multiprocessing.connection.Connection:
        if self._child is not None and self._child.is_alive() and self._conn is not None:
            return self._conn
        self._reap()
        # spawn: the serving process has threads, and the child needs none of its state.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve, args=(child, self.settings), name="pointsman-drift", daemon=True
        )
        process.start()
        child.close()  # only the child holds its end: the parent's death ends the child
        self._child, self._conn = process, parent
        log.info("drift runs in process %s", process.pid)
        return parent

    def _reap(self) -> int | None:
        """Forget the child, ending it if it still runs; its exit code."""
        child, conn = self._child, self._conn
        self._child = self._conn = None
        if conn is not None:
            conn.close()
        if child is None:
            return None
        child.join(STOP_WAIT_S)
        if child.is_alive():
            child.kill()
            child.join()
        return child.exitcode


def serve(conn: multiprocessing.connection.Connection, settings: Settings) -> None:
    """The child: run the reports whenever asked, until the pipe closes."""
    os.nice(NICE)  # background work: the serving processes and the runners come first
    from pointsman.monitoring.monitor import run_reports
    from pointsman.project import open_project

    project = open_project(settings)
    try:
        while True:
            try:
                conn.recv()
            except (EOFError, OSError):
                return
            try:
                answer: tuple[str, object] = ("ok", run_reports(project))
            except Exception as exc:  # told to the parent, which logs it like any job's
                answer = ("error", f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                conn.send(answer)
    finally:
        project.close()
