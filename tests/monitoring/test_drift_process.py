"""Drift runs in a child process for a serving process: same reports, restarted, stopped."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

from pointsman.monitoring.drift import Thresholds
from pointsman.monitoring.drift_process import DriftProcess
from pointsman.monitoring.monitor import DriftMonitor, drift_report, history
from pointsman.project import Project
from tests.monitoring.conftest import log_traffic

T = Thresholds()


def test_the_child_computes_and_stores_what_this_process_would(churn: Project) -> None:
    log_traffic(churn, 300, seed=11, shift=6.0)
    here = drift_report(churn, "churn", 1, timedelta(hours=1), T)
    process = DriftProcess(churn.settings)
    try:
        monitor = DriftMonitor(churn, "worker-a", run=process.run)
        [there] = monitor.tick(1.0)  # the first tick runs, whatever the machine's uptime
        assert process._child is not None and process._child.pid != os.getpid()
    finally:
        process.close()
    assert (there.model, there.version, there.rows) == ("churn", 1, 300)
    assert there.grade == here.grade != "ok"
    assert {f.feature: f.psi for f in there.features} == {f.feature: f.psi for f in here.features}
    series = history(churn.engine, "churn", 1, datetime.now(UTC) - timedelta(hours=1))
    assert len(series["tenure_months"]) == 1  # stored by the child


def test_a_child_that_died_is_started_again(churn: Project) -> None:
    log_traffic(churn, 150, seed=12)
    process = DriftProcess(churn.settings)
    try:
        assert [r.version for r in process.run()] == [1]
        first = process._child
        assert first is not None and first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        assert [r.version for r in process.run()] == [1]
        assert process._child is not None and process._child.pid != first.pid
    finally:
        process.close()


def test_close_ends_the_child_and_later_runs_do_nothing(churn: Project) -> None:
    process = DriftProcess(churn.settings)
    process.run()
    child = process._child
    assert child is not None and child.is_alive()
    process.close()
    assert not child.is_alive() and child.exitcode == 0  # ended by its pipe, not killed
    assert process.run() == [] and process._child is None
