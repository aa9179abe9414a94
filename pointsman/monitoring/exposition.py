"""What GET /metrics answers: every worker's recorded metrics, and the state read at scrape time.

Recorded families come from `metrics` (summed over the workers' mmap files in multiprocess
mode). The route in force, its weights and the newest drift scores are read when scraped:
from this worker's catalog and from the store, where the drift monitor (whichever process
holds its lease) writes them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from pointsman import __version__
from pointsman.monitoring import metrics
from pointsman.monitoring.monitor import latest_psi
from pointsman.monitoring.quality import CLASSIFIER_METRICS, REGRESSOR_METRICS, quality_by_version
from pointsman.routing import Route

RoutesInForce = Callable[[], dict[str, Route]]
# Scoring a day of predictions reads the log: once a minute per process, not per scrape.
QUALITY_TTL_S = 60.0
# Keyed by store too: two apps in one process (tests, an embedded app) must not share scores.
QualityKey = tuple[str, str, float]  # store URL, model, window
_quality_cache: dict[QualityKey, tuple[float, dict[tuple[int, str], dict[str, object]]]] = {}

log = logging.getLogger("pointsman.monitoring")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class StateCollector(Collector):
    """Gauges of what is in force now, read at scrape time."""

    def __init__(
        self, routes: RoutesInForce, engine: Engine, quality_window_s: float = 86400.0
    ) -> None:
        self.routes = routes
        self.engine = engine
        self.quality_window_s = quality_window_s

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "pointsman_build_info", "The pointsman version serving (value 1).", labels=["version"]
        )
        build.add_metric([__version__], 1)
        yield build
        revision = GaugeMetricFamily(
            "pointsman_route_revision",
            "The revision of each model's route in force in the scraped worker.",
            labels=["model_name"],
        )
        weight = GaugeMetricFamily(
            "pointsman_route_weight",
            "Share of a model's traffic each version of the route in force gets (0 to 1).",
            labels=["model_name", "model_version"],
        )
        for model, route in sorted(self.routes().items()):
            revision.add_metric([model], route.revision)
            total = sum(arm.weight for arm in route.policy.arms) or 1
            for arm in route.policy.arms:
                weight.add_metric([model, str(arm.version)], arm.weight / total)
        yield revision
        yield weight
        drift = GaugeMetricFamily(
            "pointsman_drift_psi",
            "PSI of each feature (and of the predictions, feature `(predictions)`) in the "
            "newest drift run: 0.1 warn, 0.25 alert by default.",
            labels=["model_name", "model_version", "feature"],
        )
        try:
            scores = latest_psi(self.engine)
        except Exception as exc:  # the store may be down: the other families still answer
            log.warning("drift scores left out of /metrics: %s", exc)
            scores = {}
        for (model, version, feature), value in sorted(scores.items()):
            drift.add_metric([model, str(version), feature], value)
        yield drift
        yield from self.quality()

    def quality(self) -> Iterator[Metric]:
        """Each routed model's quality against outcomes, per version and role."""
        labels = ["model_name", "model_version", "role"]
        figures = GaugeMetricFamily(
            "pointsman_quality",
            "Quality of the predictions of the last quality_window_s that have outcomes: "
            "`metric` is accuracy, log_loss, auc, brier, calibration_error, mae, rmse or bias.",
            labels=[*labels, "metric"],
        )
        counted = GaugeMetricFamily(
            "pointsman_quality_labelled",
            "Predictions of the last quality_window_s that have an outcome.",
            labels=labels,
        )
        for model, route in sorted(self.routes().items()):
            try:
                scores = self._scores(model, route.policy.outcome_key)
            except Exception as exc:  # the store may be down: the other families still answer
                log.warning("quality of %s left out of /metrics: %s", model, exc)
                continue
            for (version, role), score in scores.items():
                counted.add_metric([model, str(version), role], float(str(score["labelled"])))
                for name in (*CLASSIFIER_METRICS, *REGRESSOR_METRICS):
                    value = score.get(name)
                    if isinstance(value, float):
                        figures.add_metric([model, str(version), role, name], value)
        yield figures
        yield counted

    def _scores(self, model: str, key: str | None) -> dict[tuple[int, str], dict[str, object]]:
        cache_key = (str(self.engine.url), model, self.quality_window_s)
        cached = _quality_cache.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < QUALITY_TTL_S:
            return cached[1]
        scores = quality_by_version(self.engine, key, model, self.quality_window_s)
        _quality_cache[cache_key] = (time.monotonic(), scores)
        return scores


def scrape(routes: RoutesInForce, engine: Engine, quality_window_s: float = 86400.0) -> bytes:
    """The exposition text of every family (blocking: reads files and the store)."""
    if metrics.is_multiprocess():
        recorded = CollectorRegistry()
        multiprocess.MultiProcessCollector(recorded)  # type: ignore[no-untyped-call]
    else:
        recorded = metrics.REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(routes, engine, quality_window_s))
    return generate_latest(recorded) + generate_latest(state)


def prepare_multiprocess_dir(processes: int) -> Path | None:
    """Before serving: a clean folder for the workers' metric files.

    The user's PROMETHEUS_MULTIPROC_DIR is emptied of an earlier run's files (this process's
    own stay: it may serve itself); prometheus-client needs that between runs. Otherwise,
    for several serving processes, a fresh temporary folder. Returns the folder to remove
    when serving ends, or None.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        own = f"_{os.getpid()}.db"
        for old in folder.glob("*.db"):
            if not old.name.endswith(own):
                old.unlink(missing_ok=True)
        return None
    if processes == 1:
        return None  # one process: the values live in memory
    folder = Path(tempfile.mkdtemp(prefix="pointsman-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def remove_multiprocess_dir(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)


def worker_exits() -> None:
    """A worker shutting down: its live gauges (in flight, memory, breakers) stop counting."""
    if metrics.is_multiprocess():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
