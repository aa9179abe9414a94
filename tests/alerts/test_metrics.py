"""Each metric over a window, from the real store: route stats, route history, events."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pointsman.alerts.metrics import METRICS, MetricContext, format_value, get_metric
from pointsman.alerts.snapshots import NotCovered, Snapshots
from pointsman.errors import InvalidAlertRule
from pointsman.project import Project
from pointsman.routing.stats import StatsRecorder
from pointsman.runners import RunDir
from pointsman.runners.directory import new_run_dir
from pointsman.runners.serving import build_supervisor
from pointsman.store.tables import drift_results
from tests.api.conftest import register_churn
from tests.conftest import register_iris


def context(project: Project, snapshots: Snapshots, now: float) -> MetricContext:
    return MetricContext(
        project.engine, project.routes, snapshots, datetime.fromtimestamp(now, UTC)
    )


def test_route_stat_metrics_are_deltas_over_the_window(project: Project) -> None:
    stats, snapshots, t0 = StatsRecorder(), Snapshots(), 1_000.0
    primary = stats.cell("churn", 1, 1, "primary")
    primary.requests, primary.errors = 1000, 900  # long ago: outside every window below
    stats.flush(project.engine)
    snapshots.take(project.engine, t0, keep_s=600)
    ctx = context(project, snapshots, t0)
    with pytest.raises(NotCovered):
        METRICS["error_rate"].fn(ctx, "churn", 60)

    # a second worker of the same model, and a new revision: all summed
    worker2 = StatsRecorder()
    other = worker2.cell("churn", 2, 2, "primary")
    other.requests, other.errors, other.fallbacks, other.invalid = 200, 10, 4, 30
    other.queue_full = 6
    for _ in range(196):
        other.observe(0.004)
    for _ in range(4):
        other.observe(0.6)
    shadow = stats.cell("churn", 1, 3, "shadow")
    shadow.compared, shadow.agreed = 50, 45
    stats.flush(project.engine)
    worker2.flush(project.engine)
    snapshots.take(project.engine, t0 + 60, keep_s=600)
    ctx = context(project, snapshots, t0 + 60)
    expected = {
        "error_rate": 10 / 200,
        "timeout_rate": 0.0,
        "fallback_rate": 4 / 200,
        "validation_flag_rate": 30 / 200,
        "queue_full_rate": 6 / 200,
        "p99_ms": 750.0,
        "request_rate": 200 / 60,
        "shadow_agreement": 0.9,
    }
    assert {name: METRICS[name].fn(ctx, "churn", 60) for name in expected} == expected
    assert METRICS["error_rate"].fn(ctx, "iris", 60) is None  # no requests: nothing to judge
    assert format_value("error_rate", 0.05) == "5.00%"
    assert format_value("p99_ms", 750.0) == "750 ms"


def test_canary_rolled_back_within_the_window(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    first, second = register_churn(project, churn_files)
    project.routes.deploy("churn", first, "t")
    project.routes.start_canary("churn", second, [10, 50], "t")
    now = time.time()
    ctx = context(project, Snapshots(), now)
    fn = METRICS["canary_rolled_back"].fn
    assert fn(ctx, "churn", 300) == 0.0  # running, not rolled back
    project.routes.end_canary("churn", "rolled_back", "error rate 9% vs 1%", "canary")
    ctx = context(project, Snapshots(), time.time())
    assert fn(ctx, "churn", 300) == 1.0
    later = context(project, Snapshots(), time.time() + 600)
    assert fn(later, "churn", 300) == 0.0  # the rollback is older than the window


def test_a_version_failing_to_load_is_an_event_the_evaluator_sees(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    record = project.registry.get_version("iris", 1)
    stored = project.registry.artifacts.path_of(record.artifact)
    stored.write_bytes(stored.read_bytes()[:-1] + b"\1")
    run_dir = RunDir(new_run_dir())
    supervisor = build_supervisor(project, run_dir)
    supervisor.start()  # the load fails in this server's runner
    try:
        deadline = time.monotonic() + 30
        while "sha256" not in (run_dir.wait_warm("iris", 1, 0.1) or ""):
            assert time.monotonic() < deadline, run_dir.read_state()
    finally:
        supervisor.stop()
        run_dir.remove()
    ctx = context(project, Snapshots(), time.time())
    assert METRICS["version_load_failed"].fn(ctx, "iris", 300) == 1.0
    ctx.now += timedelta(minutes=10)
    assert METRICS["version_load_failed"].fn(ctx, "iris", 300) == 0.0


def test_a_killed_runner_is_restarted_and_counted_as_an_event(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    run_dir = RunDir(new_run_dir())
    supervisor = build_supervisor(project, run_dir)
    supervisor.start()
    try:
        assert run_dir.wait_warm("iris", 1, 60) is None
        (runner,) = (run_dir.version_state("iris", 1) or {})["runners"]
        os.kill(runner["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            (now,) = (run_dir.version_state("iris", 1) or {})["runners"]
            if now["state"] == "ready" and now["pid"] != runner["pid"]:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        assert now["restarts"] == 1
    finally:
        supervisor.stop()
        run_dir.remove()
    ctx = context(project, Snapshots(), time.time())
    assert METRICS["runner_restarts"].fn(ctx, "iris", 300) == 1.0
    assert METRICS["runner_restarts"].fn(ctx, "churn", 300) == 0.0


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(InvalidAlertRule) as raised:
        get_metric("p95_ms", "slow")
    message = raised.value.message
    assert message.startswith("Alert rule 'slow' refused: unknown metric 'p95_ms' (known metrics: ")
    for name in ("canary_rolled_back", "error_rate", "p99_ms", "validation_flag_rate"):
        assert name in message


def test_drift_psi_max_reads_drift_runs_that_ended_in_the_window(project: Project) -> None:
    now = datetime.now(UTC)
    rows = [
        ("age", now - timedelta(minutes=2), 0.31),
        ("plan", now - timedelta(minutes=2), 0.05),
        ("age", now - timedelta(hours=2), 0.9),  # an older run: outside a 1h window
    ]
    with project.engine.begin() as conn:
        for feature, end, psi in rows:
            conn.execute(
                drift_results.insert().values(
                    model="churn", version=1, feature=feature, window_end=end, window_s=3600,
                    rows=500, psi=psi, grade="alert" if psi > 0.25 else "ok", test="ks",
                )
            )  # fmt: skip
    ctx = context(project, Snapshots(), now.timestamp())
    fn = METRICS["drift_psi_max"].fn
    assert fn(ctx, "churn", 3600) == pytest.approx(0.31)
    assert fn(ctx, "churn", 6 * 3600) == pytest.approx(0.9)
    assert fn(ctx, "iris", 3600) is None  # no drift run: nothing to judge
